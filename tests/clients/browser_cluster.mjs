// Drives headless Chromium through a round-robin balancer in front of a
// wsgate cluster (tests/it/cluster/browser.rs). Talks to the test on
// stdin/stdout, one line each way:
//   -> "result <json>"        a finished check
//   -> "owner? <session id>"  which instance owns it? then waits for:
//   <- "nonowner-killed"      messages must keep flowing, none lost
//   <- "owner-killed"         the socket must close cleanly with 1012, and a
//                             new socket must work
// Usage: node browser_cluster.mjs <page base URL>
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [base] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => (await lines.next()).value;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// In the page: text and binary round trips, checked complete and in order,
// then a clean close with code and reason (as browser_fallback.mjs).
async function roundTrips(transports) {
  const socket = new WsgateSocket(location.origin.replace(/^http/, "ws") + "/echo", [], { transports });
  socket.binaryType = "arraybuffer";
  const received = [];
  const COUNT = 120;
  const done = new Promise((resolve, reject) => {
    socket.onmessage = (e) => { received.push(e.data); if (received.length === COUNT + 1) resolve(); };
    socket.onclose = (e) => reject(new Error("closed early: " + e.code + " " + e.reason));
    setTimeout(() => reject(new Error("timeout with " + received.length + " messages")), 30000);
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
  const big = new Uint8Array(100000).map((_, j) => (j * 31) & 255);
  socket.send(big);
  sent.push(Array.from(big).join(","));
  await done;
  const asText = received.map((d) => typeof d === "string" ? d : Array.from(new Uint8Array(d)).join(","));
  const mismatch = asText.findIndex((d, i) => d !== sent[i]);
  const closed = new Promise((resolve) => { socket.onclose = (e) => resolve(e); });
  socket.close(4000, "done");
  const close = await closed;
  return { transport: socket.transport, mismatch, count: received.length, code: close.code,
           closeReason: close.reason, clean: close.wasClean };
}

// In the page: a socket kept in window.kept, echoing `count` numbered
// messages starting at `from`; resolves with what came back.
async function echo({ transports, from, count }) {
  if (!window.kept) {
    const socket = new WsgateSocket(location.origin.replace(/^http/, "ws") + "/echo", [], { transports });
    window.kept = { socket, received: [], closed: null };
    socket.onmessage = (e) => window.kept.received.push(e.data);
    socket.onclose = (e) => { window.kept.closed = { code: e.code, reason: e.reason, clean: e.wasClean }; };
    await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  }
  const { socket, received } = window.kept;
  for (let i = from; i < from + count; i++) socket.send("m" + i);
  const deadline = Date.now() + 30000;
  while (received.length < from + count && !window.kept.closed && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return { session: socket._session, transport: socket.transport, received, closed: window.kept.closed };
}

// In the page: waits for the kept socket's close event.
async function closeOfKept() {
  const deadline = Date.now() + 30000;
  while (!window.kept.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return window.kept.closed;
}

const report = (value) => console.log("result " + JSON.stringify(value));
const openPage = async () => {
  const page = await browser.newPage();
  page.on("console", (m) => console.error("  [page] " + m.text()));
  await page.goto(base + "/");
  return page;
};

for (const transport of ["longpoll", "sse"]) {
  const page = await openPage();
  report({ check: "round trips", transport, ...(await page.evaluate(roundTrips, [transport])) });
  await page.close();
}

for (const transport of ["longpoll", "sse"]) {
  const page = await openPage();
  const first = await page.evaluate(echo, { transports: [transport], from: 0, count: 20 });
  console.log("owner? " + first.session);
  const ask = await nextLine();
  if (ask !== "nonowner-killed") throw new Error("unexpected: " + ask);
  const second = await page.evaluate(echo, { transports: [transport], from: 20, count: 20 });
  const want = Array.from({ length: 40 }, (_, i) => "m" + i);
  report({ check: "non-owner killed", transport: second.transport, inOrder: JSON.stringify(second.received) === JSON.stringify(want),
           count: second.received.length, closed: second.closed });
  console.log("kill owner");
  const told = await nextLine();
  if (told !== "owner-killed") throw new Error("unexpected: " + told);
  const close = await page.evaluate(closeOfKept);
  await page.evaluate(() => { window.kept = null; });
  const renewed = await page.evaluate(echo, { transports: [transport], from: 0, count: 5 });
  report({ check: "owner killed", transport, close, renewedCount: renewed.received.length, renewedClosed: renewed.closed });
  await page.close();
}
await browser.close();
console.log("done");
process.exit(0);
