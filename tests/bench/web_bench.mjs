// web_bench.mjs — times aldrec web's run page in headless Chromium (called
// by tests/bench/web_bench.sh): navigation → first complete chart, a
// drag-zoom re-fetch, bytes transferred. Prints one line of JSON.
import { chromium } from "playwright-core";
const E = process.env;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
const rounds = Number(E.ROUNDS || 3), first = [], zoom = [], bytes = [];
for (let r = 0; r < rounds; r++) {
  const t0 = Date.now();
  await page.goto(`${E.WEB_URL}/run.html?run=${E.RUN}&param=${E.PARAMS}`);
  await page.waitForFunction(() => window.aldrec && window.aldrec.ready, null, { timeout: 60000 });
  first.push(Date.now() - t0);
  bytes.push(await page.evaluate(() => performance.getEntriesByType("resource").reduce((a, e) => a + e.transferSize, 0)
    + performance.getEntriesByType("navigation")[0].transferSize));
  const p = await page.evaluate(() => { const u = window.aldrec.charts[0], b = u.over.getBoundingClientRect();
    return { x0: b.left + b.width * 0.4, x1: b.left + b.width * 0.42, y: b.top + b.height / 2 }; });
  await page.mouse.move(p.x0, p.y); await page.mouse.down(); await page.mouse.move(p.x1, p.y, { steps: 3 });
  const t1 = Date.now();
  await page.mouse.up();
  await page.waitForFunction(() => window.aldrec.ready && window.aldrec.page.window, null, { timeout: 60000 });
  zoom.push(Date.now() - t1);
}
const med = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(JSON.stringify({ first_ms: med(first), zoom_ms: med(zoom), bytes: med(bytes) }));
await browser.close();
