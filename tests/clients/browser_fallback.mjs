// Drives headless Chromium against the demo page behind a "firewall" that
// blocks WebSocket upgrades, and checks WsgateSocket's fallback end to end.
// Usage: node browser_fallback.mjs <page base URL> <expected default transport> [<net log file>]
// With a net log file (an https:// base with a self-signed certificate),
// Chromium writes its network log there (the caller checks it for HTTP/2
// and RFC 8441's extended CONNECT) and accepts the certificate.
import { chromium } from "playwright-core";

const [base, expected, netLog] = process.argv.slice(2);
const tlsArgs = netLog ? ["--ignore-certificate-errors", "--log-net-log=" + netLog] : [];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", ...tlsArgs],
});

// Runs in the page: text and binary (ArrayBuffer and Blob) round trips,
// checked complete and in order, then a clean close with code and reason.
async function roundTrips(transports) {
  const url = location.origin.replace(/^http/, "ws") + "/echo";
  const socket = new WsgateSocket(url, [], transports ? { transports } : undefined);
  socket.binaryType = "arraybuffer";
  const received = [];
  const COUNT = 150;
  const done = new Promise((resolve, reject) => {
    socket.onmessage = (e) => { received.push(e.data); if (received.length === COUNT + 1) resolve(); };
    socket.onclose = (e) => reject(new Error("closed early: " + e.code + " " + e.reason));
    setTimeout(() => reject(new Error("timeout with " + received.length + " messages")), 20000);
  });
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  const sent = [];
  for (let i = 0; i < COUNT; i++) {
    if (i % 3 === 0) { socket.send("text " + i + " ünïcödé"); sent.push("text " + i + " ünïcödé"); }
    else {
      const bytes = new Uint8Array(i * 7).map((_, j) => (i + j) & 255);
      socket.send(i % 3 === 1 ? bytes.buffer : new Blob([bytes]));
      sent.push(Array.from(bytes).join(","));
    }
  }
  const big = new Uint8Array(200000).map((_, j) => (j * 31) & 255);
  socket.send(big);
  sent.push(Array.from(big).join(","));
  await done;
  const asText = received.map((d) => typeof d === "string" ? d : Array.from(new Uint8Array(d)).join(","));
  const mismatch = asText.findIndex((d, i) => d !== sent[i]);
  const closed = new Promise((resolve) => { socket.onclose = (e) => resolve(e); });
  socket.close(4000, "done");
  const close = await closed;
  return { transport: socket.transport, reason: socket.fallbackReason, mismatch,
           count: received.length, code: close.code, closeReason: close.reason, clean: close.wasClean };
}

const results = {};
let failed = false;
for (const [name, transports, want] of [["default", null, expected], ["longpoll", ["longpoll"], "longpoll"],
                                         ["sse", ["sse"], "sse"]]) {
  const page = await browser.newPage();
  page.on("console", (m) => console.log("  [page] " + m.text()));
  await page.goto(base + "/");
  const demo = await page.waitForFunction(() => {
    const t = document.getElementById("transport").textContent;
    return t !== "–" ? t : null;
  }, null, { timeout: 20000 });
  const result = await page.evaluate(roundTrips, transports);
  result.demoPage = await demo.jsonValue();
  result.pageProtocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  results[name] = result;
  // fallbackReason: null when the first transport asked for worked; behind
  // the firewall the WebSocket failed while the gateway answered HTTP, so
  // the reason blames something on the way.
  const reasonOk = name === "default" && want !== "websocket"
    ? typeof result.reason === "string" && result.reason.startsWith("websocket: connection failed although the gateway answers HTTP (upgrade blocked by a proxy or firewall?)")
    : result.reason === null;
  const ok = result.transport === want && result.mismatch === -1 && result.code === 4000 &&
    result.closeReason === "done" && result.clean && reasonOk && (name !== "default" || result.demoPage === want);
  if (!ok) failed = true;
  console.log(name + ": " + JSON.stringify(result) + (ok ? " ok" : " FAILED (want " + want + ")"));
  await page.close();
}
await browser.close();
console.log(failed ? "some checks failed" : "all checks passed");
process.exit(failed ? 1 : 0);
