/*! wsgate client: the browser WebSocket API over WebSocket, SSE or long-poll.
 *
 * const socket = new WsgateSocket("wss://chat.example.com/chat", ["chat.v2"],
 *                                 { transports: ["websocket", "sse", "longpoll"] });
 * socket.transport      // "websocket" | "sse" | "longpoll" once open
 * socket.fallbackReason // every transport tried before and why it was not used
 *                       // ("websocket: …; sse: open refused with 403 …"), or null
 *
 * The fallback protocol is described in wsgate's docs/fallback.md. No dependencies.
 */
(function (global) {
  "use strict";

  const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  const PREFIX = "/_wsgate/";
  // A WebSocket that neither opens nor fails within this is treated as blocked.
  const WS_OPEN_TIMEOUT_MS = 5000;
  // An SSE stream whose first event does not arrive within this is buffered
  // or blocked by something on the way: switch the session to long-polling.
  const SSE_READY_TIMEOUT_MS = 5000;
  // Acknowledgements of SSE events are sent at most this often.
  const ACK_DELAY_MS = 50;
  // Backoff between retries of a failed request; the session lives on the
  // gateway for its timeout, so retrying is safe (sequence numbers).
  const RETRY_MS = [100, 250, 500, 1000, 2000, 4000, 8000];
  // Answers that say "not now" rather than "no": a balancer or the gateway
  // could not reach the instance holding the session. Retried like a
  // network error; if the session is gone for good, polling reports it.
  const TRANSIENT = [502, 503, 504];

  function b64encode(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }

  function b64decode(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const utf8Length = (text) => new TextEncoder().encode(text).length;

  class WsgateSocket extends EventTarget {
    constructor(url, protocols, options) {
      super();
      const target = new URL(url, global.location && global.location.href);
      if (target.protocol === "http:") target.protocol = "ws:";
      if (target.protocol === "https:") target.protocol = "wss:";
      this.url = target.href;
      this._protocols = protocols === undefined ? [] : [].concat(protocols);
      this._transports = (options && options.transports) || ["websocket", "sse", "longpoll"];
      this._base = (target.protocol === "wss:" ? "https://" : "http://") + target.host + PREFIX;
      this._path = target.pathname + target.search;
      this.readyState = CONNECTING;
      this.protocol = "";
      this.extensions = "";
      this.transport = null;
      this.fallbackReason = null;
      this._binaryType = "blob";
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      this._reasons = [];
      this._queue = [];       // outgoing {seq, msg, size, ready}
      this._nextSeq = 1;      // upstream sequence number of the next message
      this._lastSeq = 0;      // last downstream event delivered
      this._buffered = 0;
      this._abort = new AbortController();
      setTimeout(() => this._connect(0), 0);
    }

    get binaryType() { return this._binaryType; }
    set binaryType(value) {
      if (value === "blob" || value === "arraybuffer") this._binaryType = value;
    }
    get bufferedAmount() { return this._ws ? this._ws.bufferedAmount : this._buffered; }

    send(data) {
      if (this.readyState === CONNECTING) {
        throw new DOMException("Still in CONNECTING state.", "InvalidStateError");
      }
      if (this.readyState !== OPEN) return;
      if (this._ws) return this._ws.send(data);
      const entry = { seq: this._nextSeq++, msg: null, size: 0, ready: null };
      if (typeof data === "string") {
        entry.msg = { text: data };
        entry.size = utf8Length(data);
      } else if (data instanceof Blob) {
        entry.size = data.size;
        entry.ready = data.arrayBuffer().then((buf) => { entry.msg = { binary: b64encode(new Uint8Array(buf)) }; });
      } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
        const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
          : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        entry.msg = { binary: b64encode(bytes) };
        entry.size = bytes.length;
      } else {
        return this.send(String(data));
      }
      this._buffered += entry.size;
      this._queue.push(entry);
      this._flush();
    }

    close(code, reason) {
      if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new DOMException("The close code must be 1000 or 3000-4999.", "InvalidAccessError");
      }
      if (reason !== undefined && utf8Length(reason) > 123) {
        throw new DOMException("The close reason is longer than 123 bytes.", "SyntaxError");
      }
      if (this.readyState >= CLOSING) return;
      if (this.readyState === CONNECTING) {
        this.readyState = CLOSING;
        this._closeOnOpen = true;
        return;
      }
      this.readyState = CLOSING;
      if (this._ws) return this._ws.close(code, reason);
      const close = code === undefined ? {} : { code: code, reason: reason || "" };
      this._queue.push({ seq: this._nextSeq++, msg: { close: close }, size: 0, ready: null });
      this._flush();
    }

    // --- events -----------------------------------------------------------

    _emit(event) {
      this.dispatchEvent(event);
      const handler = this["on" + event.type];
      if (typeof handler === "function") handler.call(this, event);
    }

    _opened(transport) {
      this.transport = transport;
      if (this._closeOnOpen) return this._fail("closed before open");
      this.readyState = OPEN;
      if (this.fallbackReason) {
        console.info("WsgateSocket: using " + transport + " (" + this.fallbackReason + ")");
      }
      this._emit(new Event("open"));
    }

    _message(data) {
      if (this.readyState !== OPEN && this.readyState !== CLOSING) return;
      this._emit(new MessageEvent("message", { data: data, origin: new URL(this._base).origin }));
    }

    _finish(code, reason, wasClean) {
      if (this.readyState === CLOSED) return;
      this.readyState = CLOSED;
      this._abort.abort();
      if (this._es) this._es.close();
      if (this._unload) global.removeEventListener("pagehide", this._unload);
      this._emit(new CloseEvent("close", { code: code, reason: reason || "", wasClean: wasClean }));
    }

    _fail(why) {
      if (this.readyState === CLOSED) return;
      console.warn("WsgateSocket: " + why);
      this._emit(new Event("error"));
      if (this._session) this._leave(1000, "");
      this._finish(1006, "", false);
    }

    // --- choosing a transport ---------------------------------------------

    _connect(index) {
      if (this._closeOnOpen) return this._fail("closed before open");
      const transport = this._transports[index];
      if (transport === undefined) return this._fail("no transport worked: " + this._reasons.join("; "));
      if (transport === "websocket") return this._tryWebSocket(index);
      if (transport === "sse" || transport === "longpoll") return this._tryFallback(transport, index);
      this._skip(index, "unknown transport " + transport);
    }

    // Records why a transport was not used: fallbackReason always lists
    // every transport tried so far, whether or not a later one works.
    _reason(text) {
      this._reasons.push(text);
      this.fallbackReason = this._reasons.join("; ");
      return this._reasons.length - 1;
    }

    _skip(index, reason) {
      this._reason(reason);
      this._connect(index + 1);
    }

    // A failed WebSocket open tells the page nothing (no status), so its
    // reason waits for the fallback open: the gateway answers that over
    // plain HTTP, through the same checks. An error answer (403, 502, ...)
    // is then the WebSocket's reason too; a 200 means the gateway takes
    // the request, so something on the way blocked the upgrade.
    _explainWebSocket(answer) {
      if (this._wsFailed === undefined) return;
      const at = this._wsFailed;
      this._wsFailed = undefined;
      this._reasons[at] = "websocket: " + (answer === null
        ? "connection failed, and the gateway is unreachable over HTTP too"
        : answer.ok ? "connection failed although the gateway answers HTTP (upgrade blocked by a proxy or firewall?)"
        : "refused: the gateway answered " + answer.status + (answer.text ? " " + answer.text : ""));
      this.fallbackReason = this._reasons.join("; ");
    }

    _tryWebSocket(index) {
      if (typeof WebSocket === "undefined") return this._skip(index, "websocket: not supported");
      let ws;
      try {
        ws = new WebSocket(this.url, this._protocols);
      } catch (e) {
        return this._skip(index, "websocket: " + e.message);
      }
      ws.binaryType = "arraybuffer";
      let settled = false;
      const giveUp = (why) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.onopen = ws.onclose = ws.onerror = null;
        try { ws.close(); } catch (e) { /* already closed */ }
        this._skip(index, "websocket: " + why);
      };
      const timer = setTimeout(() => giveUp("no answer within " + WS_OPEN_TIMEOUT_MS + " ms"), WS_OPEN_TIMEOUT_MS);
      ws.onerror = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.onopen = ws.onclose = ws.onerror = null;
        this._wsFailed = this._reason("websocket: connection failed (no HTTP answer to tell why)");
        this._connect(index + 1);
      };
      ws.onclose = (e) => giveUp("closed before open (code " + e.code + ")");
      ws.onopen = () => {
        settled = true;
        clearTimeout(timer);
        this._ws = ws;
        this.protocol = ws.protocol;
        this.extensions = ws.extensions;
        ws.onmessage = (e) => this._message(this._binary(e.data));
        ws.onerror = () => this._emit(new Event("error"));
        ws.onclose = (e) => { this._ws = null; this._finish(e.code, e.reason, e.wasClean); };
        this._opened("websocket");
      };
    }

    _binary(data) {
      if (typeof data === "string") return data;
      return this._binaryType === "blob" ? new Blob([data]) : data;
    }

    // --- fallback sessions --------------------------------------------------

    async _tryFallback(transport, index) {
      if (!this._session) {
        const params = new URLSearchParams({ path: this._path, transport: transport });
        this._protocols.forEach((p) => params.append("protocol", p));
        let response;
        try {
          response = await fetch(this._base + "open?" + params, {
            method: "POST", credentials: "include", cache: "no-store", signal: this._abort.signal,
          });
        } catch (e) {
          this._explainWebSocket(null);
          return this._skip(index, transport + ": open failed (" + e.message + ")");
        }
        if (!response.ok) {
          const text = (await response.text().catch(() => "")).trim();
          this._explainWebSocket({ ok: false, status: response.status, text: text });
          this._reason(transport + ": open refused with " + response.status + (text ? " " + text : ""));
          return this._fail("the gateway refused the session: " + this.fallbackReason);
        }
        this._explainWebSocket({ ok: true });
        const info = await response.json();
        this._session = info.session;
        this._maxPost = info.max_post;
        this.protocol = info.protocol || "";
        this._unload = () => this._leave(1001, "page closed");
        global.addEventListener("pagehide", this._unload);
      }
      if (transport === "sse") return this._startSse(index);
      this._opened("longpoll");
      this._pollLoop();
    }

    _url(action) { return this._base + "s/" + this._session + "/" + action; }

    _deliver(event) {
      if (event.seq <= this._lastSeq) return; // delivered before: a resent response
      this._lastSeq = event.seq;
      if (event.close) return this._serverClosed(event.close.code, event.close.reason);
      if (event.text !== undefined) return this._message(event.text);
      this._message(this._binary(b64decode(event.binary)));
    }

    _serverClosed(code, reason) {
      this.readyState = CLOSING;
      this._ackSoon(0);
      this._finish(code, reason, true);
    }

    _startSse(index) {
      if (typeof EventSource === "undefined") return this._switchToPolling(index, "sse: not supported");
      const es = new EventSource(this._url("sse"), { withCredentials: true });
      this._es = es;
      let ready = false;
      const timer = setTimeout(() => this._switchToPolling(index, "sse: no event within " + SSE_READY_TIMEOUT_MS + " ms (buffered by a proxy?)"), SSE_READY_TIMEOUT_MS);
      es.addEventListener("ready", () => {
        if (ready) return;
        ready = true;
        clearTimeout(timer);
        this._opened("sse");
      });
      es.onmessage = (e) => { this._deliver(JSON.parse(e.data)); this._ackSoon(ACK_DELAY_MS); };
      es.onerror = () => {
        if (es.readyState !== EventSource.CLOSED || this.readyState === CLOSED) return;
        clearTimeout(timer);
        if (!ready) return this._switchToPolling(index, "sse: stream refused");
        this._fail("event stream lost (session expired or closed)");
      };
    }

    _switchToPolling(index, reason) {
      if (this._es) { this._es.close(); this._es = null; }
      if (this.transport === "sse" || this.readyState !== CONNECTING) return;
      this._reason(reason);
      if (this._transports.indexOf("longpoll") < 0) return this._fail(reason);
      this._opened("longpoll");
      this._pollLoop();
    }

    async _pollLoop() {
      let failures = 0;
      while (this.readyState !== CLOSED) {
        let response;
        try {
          response = await fetch(this._url("poll?ack=" + this._lastSeq), {
            credentials: "include", cache: "no-store", signal: this._abort.signal,
          });
        } catch (e) {
          if (this.readyState === CLOSED) return;
          if (failures >= RETRY_MS.length) return this._fail("polling failed: " + e.message);
          await sleep(RETRY_MS[failures++]);
          continue;
        }
        if (TRANSIENT.includes(response.status) && failures < RETRY_MS.length) {
          await sleep(RETRY_MS[failures++]);
          continue;
        }
        if (!response.ok) return this._fail("poll answered " + response.status + " " + (await response.text()).trim());
        failures = 0;
        const body = await response.json().catch(() => ({ events: [] }));
        if (body.superseded) return;
        body.events.forEach((event) => this._deliver(event));
      }
    }

    // --- upstream -------------------------------------------------------------

    _ackSoon(delay) {
      if (this._ackTimer) return;
      this._ackTimer = setTimeout(() => { this._ackTimer = null; this._ackDue = true; this._flush(); }, delay);
    }

    async _flush() {
      if (this._sending || !this._session) return;
      this._sending = true;
      try {
        while (this._queue.length > 0 || this._ackDue) {
          if (this._queue.length > 0 && this._queue[0].ready) await this._queue[0].ready;
          const batch = this._takeBatch();
          this._ackDue = false;
          const body = { ack: this._lastSeq, messages: batch.map((entry) => entry.msg) };
          if (batch.length > 0) body.seq = batch[0].seq;
          const answer = await this._post("send", JSON.stringify(body));
          if (!answer) return;
          while (this._queue.length > 0 && this._queue[0].seq <= answer.acked) {
            this._buffered -= this._queue.shift().size;
          }
        }
      } finally {
        this._sending = false;
      }
    }

    _takeBatch() {
      const batch = [];
      let bytes = 0;
      const limit = Math.max(1024, (this._maxPost || 65536) / 2);
      for (const entry of this._queue) {
        if (entry.msg === null || (batch.length > 0 && bytes + entry.size * 1.4 > limit)) break;
        batch.push(entry);
        bytes += entry.size * 1.4 + 32;
      }
      return batch;
    }

    async _post(action, body) {
      for (let attempt = 0; ; attempt++) {
        try {
          const response = await fetch(this._url(action), {
            method: "POST", body: body, credentials: "include", cache: "no-store",
            headers: { "Content-Type": "text/plain;charset=UTF-8" },
          });
          if (response.ok) return await response.json();
          if (TRANSIENT.includes(response.status) && attempt < RETRY_MS.length && this.readyState !== CLOSED) {
            await sleep(RETRY_MS[attempt]);
            continue;
          }
          if (this.readyState !== CLOSED) this._fail(action + " answered " + response.status + " " + (await response.text()).trim());
          return null;
        } catch (e) {
          if (this.readyState === CLOSED || attempt >= RETRY_MS.length) return null;
          await sleep(RETRY_MS[attempt]);
        }
      }
    }

    _leave(code, reason) {
      const body = JSON.stringify({ code: code, reason: reason });
      const url = this._url("close");
      if (!(navigator.sendBeacon && navigator.sendBeacon(url, body))) {
        fetch(url, { method: "POST", body: body, keepalive: true, credentials: "include" }).catch(() => {});
      }
    }
  }

  for (const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
    Object.defineProperty(WsgateSocket, name, { value: value });
    Object.defineProperty(WsgateSocket.prototype, name, { value: value });
  }
  global.WsgateSocket = WsgateSocket;
})(typeof window !== "undefined" ? window : globalThis);
