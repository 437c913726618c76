// browser.mjs — aldrec web's pages in real Chromium (Debian's, driven by
// playwright-core), checked against SQL on the raw rows (psql, admin DSN).
// Prints "ok - ..." / "not ok - ..." lines; tests/integration/web_browser.sh
// counts them. Environment: WEB_URL, ADMIN_DSN, PROC1, PROC2, PROC3, LONG,
// SPIKE_TS, LIVE (a process being recorded), OUT (screenshots).
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";

const E = process.env;
const base = E.WEB_URL;
let pass = 0, fail = 0;
const ok = (what, cond, detail = "") => {
  if (cond) { pass++; console.log("ok - " + what); }
  else { fail++; console.log("not ok - " + what + (detail ? ": " + detail : "")); }
};
const sql = (q) => execFileSync("psql", ["-XAtq", "-v", "ON_ERROR_STOP=1", E.ADMIN_DSN, "-c", q]).toString().trim();

const browser = await chromium.launch({ executablePath: E.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"] });
const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
const page = await ctx.newPage();
const requests = [];
page.on("pageerror", (e) => console.error("page error: " + e.message));
page.on("console", (m) => { if (m.type() === "error") console.error("console: " + m.text()); });
page.on("request", (r) => requests.push(r.url()));
const ready = () => page.waitForFunction(() => window.aldrec && window.aldrec.ready, null, { timeout: 20000 });

// Canvases with pixels that are not background (white or transparent).
const inkPerCanvas = () => page.evaluate(() => window.aldrec.charts.map((u) => {
  const c = u.ctx.canvas, d = u.ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) n++;
  return n;
}));

// ---- run page ---------------------------------------------------------------
const P = ["heater1.temperature", "chamber.pressure", "mfc_tma.flow", "heater1.setpoint"];
await page.goto(`${base}/run.html?run=${E.PROC1}&param=${P.join(",")}`);
await ready();
const units = P.map((p) => sql(`SELECT units FROM parameter_names WHERE full_name = '${p}'`));
const npanels = new Set(units).size;
const ink = await inkPerCanvas();
ok(`run page: one panel per unit (${npanels})`, ink.length === npanels, JSON.stringify(ink));
ok("run page: every panel draws (non-background pixels in each canvas)", ink.length > 0 && ink.every((n) => n > 500), JSON.stringify(ink));
const legend = await page.evaluate(() => [...document.querySelectorAll(".u-legend .u-series .u-label")].map((e) => e.textContent));
for (let i = 0; i < P.length; i++)
  ok(`legend names ${P[i]} with its units [${units[i]}]`, legend.includes(P[i] + (units[i] ? ` [${units[i]}]` : "")), JSON.stringify(legend));
await page.screenshot({ path: `${E.OUT}/web-run.png`, fullPage: true });

// The cursor readout at three instants: the values under the cursor are
// stored samples (time and value), and the readout prints them.
for (const frac of [0.2, 0.5, 0.8]) {
  const box = await page.evaluate((f) => { const u = window.aldrec.charts[0], r = u.over.getBoundingClientRect();
    return { x: r.left + r.width * f, y: r.top + r.height / 2 }; }, frac);
  await page.mouse.move(box.x, box.y);
  await page.waitForTimeout(100);
  const at = await page.evaluate(() => { const u = window.aldrec.charts[0], i = u.cursor.idx;
    return { t: u.data[0][i], vals: u.series.slice(1).map((s, k) => ({ label: s.label, v: u.data[k + 1][i] })),
             text: document.getElementById("readout").textContent }; });
  const first = at.vals.find((x) => x.v != null);
  const name = first.label.replace(/ \[.*\]$/, "");
  const stored = sql(`SELECT value FROM process_data_points d JOIN parameter_names n ON n.parameter_id = d.parameter_id
                      WHERE d.process_id = ${E.PROC1} AND n.full_name = '${name}'
                        AND d.ts = to_timestamp(${at.t.toFixed(6)})`);
  ok(`readout at ${Math.round(frac * 100)} %: ${name} = ${first.v} is the stored sample at that instant (SQL: ${stored})`,
     stored !== "" && Number(stored) === first.v);
  ok(`readout at ${Math.round(frac * 100)} %: the readout line says so`, at.text.includes(`${name} = ${first.v} `), at.text);
}

// ---- zoom on the 10-hour run, the spike at full zoom-out ------------------------
await page.goto(`${base}/run.html?run=${E.LONG}&param=heater1.temperature`);
await ready();
const spike = Number(E.SPIKE_TS);
const col = await page.evaluate((ts) => {
  const u = window.aldrec.charts[0], x = Math.round(u.valToPos(ts, "x", true)), y = Math.round(u.valToPos(900, "y", true));
  const d = u.ctx.getImageData(x - 2, y - 2, 5, 8).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 150 && d[i + 2] > 100) n++;
  const xs = u.data[0];
  return { n, x, y, points: xs.length, from: xs[0], to: xs[xs.length - 1] };
}, spike);
ok(`10-hour run: the one-sample spike is drawn at full zoom-out (line pixels at its column x=${col.x}, y=${col.y})`, col.n > 0, JSON.stringify(col));
const density = (s) => s.series[0].t.length / (s.to - s.from);
const whole = await page.evaluate(() => window.aldrec.page.lastSeries);
const target = 3 * 3600 + Date.parse("2026-01-05T00:00:00Z") / 1000;
async function drag(a, b) {
  const p = await page.evaluate(([a, b]) => { const u = window.aldrec.charts[0], r = u.over.getBoundingClientRect();
    return { x0: r.left + u.valToPos(a, "x"), x1: r.left + u.valToPos(b, "x"), y: r.top + r.height / 2 }; }, [a, b]);
  await page.mouse.move(p.x0, p.y); await page.mouse.down(); await page.mouse.move(p.x1, p.y, { steps: 5 }); await page.mouse.up();
  await page.waitForFunction(() => window.aldrec.ready && window.aldrec.page.window, null, { timeout: 20000 });
  await ready();
}
const nfetch = (await page.evaluate(() => window.aldrec.fetches.length));
await drag(target - 200, target + 202);
await drag(target, target + 2);
const zoomed = await page.evaluate(() => ({ s: window.aldrec.page.lastSeries, w: window.aldrec.page.window,
  fetches: window.aldrec.fetches.map((f) => f.url) }));
const span = zoomed.w[1] - zoomed.w[0];
ok(`zoom by dragging to about 2 s (${span.toFixed(2)} s)`, span > 1 && span < 4);
ok(`zooming re-fetched the series (${zoomed.fetches.length - nfetch} requests)`, zoomed.fetches.slice(nfetch).some((u) => u.includes("/api/series") && u.includes("from=")));
ok(`zoomed: finer resolution (${density(zoomed.s).toFixed(2)} vs ${density(whole).toFixed(4)} points per second)`, density(zoomed.s) > 100 * density(whole));
const box = await page.evaluate(() => { const r = window.aldrec.charts[0].over.getBoundingClientRect(); return { x: r.left + r.width / 2, y: r.top + r.height / 2 }; });
await page.mouse.dblclick(box.x, box.y);
await page.waitForFunction(() => window.aldrec.ready && !window.aldrec.page.window, null, { timeout: 20000 });
const reset = await page.evaluate(() => window.aldrec.page.lastSeries);
ok("double-click restores the whole run", Math.abs(reset.from - whole.from) < 1e-3 && Math.abs(reset.to - whole.to) < 1e-3,
   `${reset.from}..${reset.to} vs ${whole.from}..${whole.to}`);

// ---- compare page ---------------------------------------------------------------
await page.goto(`${base}/compare.html?runs=${E.PROC1},${E.PROC2},${E.PROC3}&param=heater1.temperature&step=1&k=2`);
await ready();
const cmp = await page.evaluate(() => ({ ink: null, data: window.aldrec.charts[0].data, n: window.aldrec.compare.traces.length }));
const cink = await inkPerCanvas();
ok("compare page: the traces and the difference chart draw", cink.length === 2 && cink.every((n) => n > 300), JSON.stringify(cink));
const offs = sql(`SELECT string_agg(to_char(offset_s, 'FM99990.000'), ' ' ORDER BY offset_s) FROM compare_runs(${E.PROC1}, ${E.PROC2}, 1,
                  (SELECT parameter_id FROM parameter_names WHERE full_name = 'heater1.temperature')) WHERE b_mean IS NOT NULL`);
const drawnOffs = cmp.data[0].filter((x, i) => cmp.data[2][i] != null).map((x) => x.toFixed(3)).join(" ");
ok("compare page: run 2's drawn offsets equal compare_runs()", drawnOffs === offs, `${drawnOffs} vs ${offs}`);
const envSql = sql(`WITH s AS (SELECT s.process_id AS id, s.started_at, coalesce(s.ended_at, 'infinity') AS e FROM process_step_spans s
                     WHERE s.process_id IN (${E.PROC1}, ${E.PROC2}, ${E.PROC3}) AND s.step_no = 1),
                    m AS (SELECT s.id, extract(epoch FROM date_bin('1 second', d.ts, s.started_at) - s.started_at) AS o, avg(d.value) AS v
                     FROM s JOIN process_data_points d ON d.process_id = s.id AND d.ts >= s.started_at AND d.ts < s.e AND d.quality = 0
                     AND d.parameter_id = (SELECT parameter_id FROM parameter_names WHERE full_name = 'heater1.temperature') GROUP BY 1, 2)
                     , e AS (SELECT o, avg(v) - 2 * stddev_samp(v) AS lo, avg(v) + 2 * stddev_samp(v) AS hi FROM m GROUP BY o HAVING count(*) >= 2)
                  SELECT string_agg(to_char(o, 'FM99990.000') || ':' || round(lo::numeric, 4) || ':' || round(hi::numeric, 4), ' ' ORDER BY o) FROM e`);
const n = cmp.n;
const envDrawn = cmp.data[0].map((x, i) => [x, cmp.data[n + 1][i], cmp.data[n + 2][i]]).filter((r) => r[1] != null)
  .map((r) => `${r[0].toFixed(3)}:${r[1].toFixed(4)}:${r[2].toFixed(4)}`).join(" ");
ok("compare page: the drawn envelope's bounds equal SQL's mean ± 2σ", envDrawn === envSql, `${envDrawn} vs ${envSql}`);
await page.screenshot({ path: `${E.OUT}/web-compare.png`, fullPage: true });

// ---- bad URLs: the page says what is wrong ---------------------------------------
await page.goto(`${base}/run.html?run=99999999`);
await page.waitForFunction(() => window.aldrec.error, null, { timeout: 10000 });
ok("unknown run: the page says so", (await page.textContent("#error")).includes("run: unknown process 99999999"));

// ---- live follow -----------------------------------------------------------------
if (E.LIVE) {
  await page.goto(`${base}/run.html?run=${E.LIVE}&param=system.read_counter`);
  await ready();
  const lags = [];
  let advanced = 0, last = 0;
  for (let k = 0; k < 5; k++) {
    await page.waitForTimeout(1500);
    const drawn = await page.evaluate(() => { const x = window.aldrec.charts[0].data[0]; return x[x.length - 1]; });
    const stored = Number(sql(`SELECT extract(epoch FROM max(ts)) FROM process_data_points WHERE process_id = ${E.LIVE}`));
    lags.push(stored - drawn);
    if (drawn > last) advanced++;
    last = drawn;
  }
  ok(`live: the newest drawn sample advances (${advanced} of 5 looks)`, advanced === 5);
  ok(`live: it stays within 2 s of the newest stored row (lags ${lags.map((l) => l.toFixed(2)).join(", ")} s)`, lags.every((l) => l <= 2));
}

// ---- nothing from another origin ------------------------------------------------
const foreign = requests.filter((u) => !u.startsWith(base + "/"));
ok(`the pages made ${requests.length} requests, none outside ${base}`, requests.length > 10 && foreign.length === 0, foreign.slice(0, 3).join(" "));

await browser.close();
console.log(`web_browser: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
