// Autobahn fuzzingserver client on Node `ws`: runs every case the server
// offers, echoing each message, then asks the server to write its report.
// Usage: node autobahn_client.mjs BASE_URL AGENT (the fuzzingserver or wsgate).
import WebSocket from 'ws';

const [base, agent] = process.argv.slice(2);
// A case that hangs is cut; the fuzzingserver marks it failed.
const CASE_TIMEOUT_MS = 60_000;

function open(url, onMessage) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: true, maxPayload: 64 * 2 ** 20 });
    const timer = setTimeout(() => ws.terminate(), CASE_TIMEOUT_MS);
    ws.on('message', (data, isBinary) => onMessage(ws, data, isBinary));
    ws.on('error', () => {});
    ws.on('close', () => { clearTimeout(timer); resolve(); });
  });
}

let count = 0;
await open(`${base}/getCaseCount`, (_ws, data) => { count = Number(data.toString()); });
for (let c = 1; c <= count; c++) {
  await open(`${base}/runCase?case=${c}&agent=${agent}`, (ws, data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
}
await open(`${base}/updateReports?agent=${agent}`, () => {});
console.log(`${agent}: ${count} cases run`);
