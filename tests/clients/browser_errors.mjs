// Drives headless Chromium: WsgateSocket's errors tell the page what
// happened. Each case opens a socket that cannot open and checks that
// `fallbackReason` names every transport tried with the gateway's answer
// (status and reason), and does not blame a proxy or firewall when the
// gateway itself refused.
// Usage: node browser_errors.mjs <page URL> <cases as JSON>
//   case: { name, url, transports, includes: [...], excludes: [...] }
import { chromium } from "playwright-core";

const [pageUrl, casesJson] = process.argv.slice(2);
const cases = JSON.parse(casesJson);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// Runs in the page: opens the socket, waits for open or close.
async function attempt([url, transports]) {
  const socket = new WsgateSocket(url, [], transports ? { transports } : undefined);
  const outcome = await new Promise((resolve) => {
    socket.onopen = () => resolve("open");
    socket.onclose = (e) => resolve("closed " + e.code);
    setTimeout(() => resolve("timeout"), 20000);
  });
  return { outcome, transport: socket.transport, reason: socket.fallbackReason };
}

let failed = false;
for (const c of cases) {
  const page = await browser.newPage();
  page.on("console", (m) => console.log("  [page] " + m.text()));
  await page.goto(pageUrl);
  await page.waitForFunction(() => typeof WsgateSocket === "function", null, { timeout: 20000 });
  const result = await page.evaluate(attempt, [c.url, c.transports]);
  const reason = result.reason || "";
  const problems = [];
  if (result.outcome !== "closed 1006") problems.push("outcome " + result.outcome);
  for (const want of c.includes) if (!reason.includes(want)) problems.push("reason lacks " + JSON.stringify(want));
  for (const not of c.excludes) if (reason.includes(not)) problems.push("reason has " + JSON.stringify(not));
  if (problems.length > 0) failed = true;
  console.log(c.name + ": " + JSON.stringify(result) + (problems.length ? " FAILED: " + problems.join(", ") : " ok"));
  await page.close();
}
await browser.close();
console.log(failed ? "some checks failed" : "all checks passed");
process.exit(failed ? 1 : 0);
