// Relay checks with an independent client: Node `ws`.
// Usage: node ws_client.mjs ws://host:port/path [ws://... limited route]
// Exits 0 when every check passed, 1 with the failing check on stderr.
import { randomBytes } from "node:crypto";
import WebSocket from "ws";

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    const queue = [];
    const waiters = [];
    ws.on("message", (data, isBinary) => {
      const msg = { data: isBinary ? Buffer.from(data) : data.toString(), isBinary };
      const w = waiters.shift();
      w ? w(msg) : queue.push(msg);
    });
    ws.next = () => new Promise((res) => { const m = queue.shift(); m ? res(m) : waiters.push(res); });
    ws.closed = new Promise((res) => ws.on("close", (code, reason) => res({ code, reason: reason.toString() })));
    ws.on("open", () => resolve(ws));
    ws.on("error", reject);
  });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function echoRoundTrips(url) {
  const ws = await open(url);
  for (const size of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
    const payload = randomBytes(size);
    ws.send(payload);
    const got = await ws.next();
    check(got.isBinary && Buffer.compare(got.data, payload) === 0, `binary ${size}`);
    const text = "é".repeat(size >> 1);
    ws.send(text);
    const back = await ws.next();
    check(!back.isBinary && back.data === text, `text ${size}`);
  }
  // Fragmented message.
  ws.send("frag-", { fin: false });
  ws.send("mented", { fin: true });
  check((await ws.next()).data === "frag-mented", "fragmented");
  for (let i = 0; i < 500; i++) ws.send(String(i));
  for (let i = 0; i < 500; i++) check((await ws.next()).data === String(i), `order at ${i}`);
  ws.close(4000, "node bye");
  const closed = await ws.closed;
  check(closed.code === 4000 && closed.reason === "node bye", `close ${closed.code} ${closed.reason}`);
}

async function oversizedGets1009(url) {
  const ws = await open(url);
  ws.send(Buffer.alloc(64 * 1024 + 1));
  const closed = await ws.closed;
  check(closed.code === 1009, `close code ${closed.code}`);
}

const timer = setTimeout(() => { console.error("node ws: FAILED: timeout"); process.exit(1); }, 60000);
try {
  await echoRoundTrips(process.argv[2]);
  if (process.argv[3]) await oversizedGets1009(process.argv[3]);
  console.log("node ws: all checks passed");
  clearTimeout(timer);
} catch (e) {
  console.error(`node ws: FAILED: ${e.message}`);
  process.exit(1);
}
