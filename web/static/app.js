/* app.js — the pages of aldrec web: runs, run (trends) and compare. The
 * data come from /api/* of the same origin; charts are uPlot. window.aldrec
 * exposes the state the browser tests read (charts, fetches, ready). */
"use strict";
window.aldrec = { ready: false, fetches: [], charts: [], error: null };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const $ = (id) => document.getElementById(id);
const qs = new URLSearchParams(location.search);

async function getJSON(url) {
  const t0 = performance.now();
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ error: "not JSON (" + r.status + ")" }));
  window.aldrec.fetches.push({ url, ms: performance.now() - t0, status: r.status });
  if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
  return body;
}
function showError(e) {
  window.aldrec.error = String(e.message || e);
  $("error").textContent = window.aldrec.error;
}
function fmtTime(t, start, clock) {
  if (clock === "rel") return (t - start).toFixed(t - start < 100 ? 2 : 0) + " s";
  return new Date(t * 1000).toISOString().replace("T", " ").replace("Z", "");
}

/* ---- runs page ---------------------------------------------------------- */
async function aldrecRunsPage() {
  const f = $("filter");
  for (const k of ["machine", "recipe", "lot", "since"]) if (qs.get(k)) f.elements[k].value = qs.get(k);
  const u = new URLSearchParams();
  for (const k of ["machine", "recipe", "lot", "since"]) if (qs.get(k)) u.set(k, qs.get(k));
  try {
    const runs = await getJSON("/api/runs?" + u);
    const tb = document.querySelector("#runs tbody");
    for (const r of runs) {
      const tr = document.createElement("tr");
      const cells = [r.run, r.machine, r.recipe, r.lot || "", new Date(r.started * 1000).toISOString(),
        r.duration_s.toFixed(1) + " s", r.status, r.steps, r.points, r.gaps, r.points_lost, r.bad];
      tr.innerHTML = '<td><input type="checkbox" value="' + Number(r.run) + '"></td>';
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        if (i === 0) { const a = document.createElement("a"); a.href = "/run.html?run=" + Number(c); a.textContent = c; td.appendChild(a); }
        else td.textContent = c;
        if (i === 6 && r.status === "running") td.className = "live";
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    }
    $("compare").onclick = () => {
      const ids = [...document.querySelectorAll("#runs input:checked")].map((x) => x.value);
      if (ids.length >= 2) location.href = "/compare.html?runs=" + ids.join(",");
    };
    window.aldrec.ready = true;
  } catch (e) { showError(e); }
}

/* ---- run page ----------------------------------------------------------- */
/* Series of one panel as uPlot data: one x array for all (uPlot.join), a
 * null where the line is broken. */
function panelData(series) {
  const tables = series.map((s) => {
    const t = [], v = [];
    let b = 0;
    for (let i = 0; i < s.t.length; i++) {
      if (b < s.breaks.length && s.breaks[b] === i) { t.push(s.t[i] - 1e-6); v.push(null); b++; }
      t.push(s.t[i]); v.push(s.v[i]);
    }
    return [t, v];
  });
  if (tables.length === 1) return tables[0];
  return uPlot.join(tables, tables.map(() => [2]));
}

function drawOverlay(u, page, panel) {
  const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
  ctx.save();
  const px = (t) => u.valToPos(t, "x", true);
  const run = page.run;
  /* steps: alternating bands, boundaries, labels */
  run.steps.forEach((s, i) => {
    const x0 = Math.max(px(s.start), u.bbox.left);
    const x1 = Math.min(px(s.end === null ? page.now : s.end), u.bbox.left + u.bbox.width);
    if (x1 <= x0) return;
    ctx.fillStyle = i % 2 ? "rgba(120,120,200,0.06)" : "rgba(120,200,120,0.06)";
    ctx.fillRect(x0, top, x1 - x0, h);
    ctx.strokeStyle = "rgba(0,0,0,0.25)"; ctx.beginPath(); ctx.moveTo(x0, top); ctx.lineTo(x0, top + h); ctx.stroke();
    ctx.fillStyle = "#555"; ctx.font = 11 * devicePixelRatio + "px DejaVu Sans";
    ctx.fillText(s.no + " " + s.name, x0 + 3, top + 12 * devicePixelRatio);
  });
  /* spans without good data: red (bad quality), grey (no samples) */
  for (const s of panel.series) for (const sp of s.spans) {
    const x0 = px(sp[0]), x1 = Math.max(px(sp[1]), x0 + 1);
    ctx.fillStyle = sp[2] === "bad" ? "rgba(220,0,0,0.18)" : "rgba(128,128,128,0.18)";
    ctx.fillRect(x0, top, x1 - x0, h);
  }
  /* limits */
  panel.params.forEach((p, i) => {
    for (const lim of [p.min, p.max]) {
      if (lim === null) continue;
      const y = u.valToPos(lim, "y", true);
      if (y < top || y > top + h) continue;
      ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
    }
  });
  ctx.setLineDash([]);
  /* set-point events of this panel's parameters: a triangle at the requested value */
  panel.params.forEach((p, i) => {
    for (const e of run.setpoints) {
      if (e.param !== p.id) continue;
      const x = px(e.ts), y = u.valToPos(e.requested, "y", true);
      ctx.fillStyle = COLORS[i % COLORS.length];
      ctx.beginPath(); ctx.moveTo(x, y - 6); ctx.lineTo(x - 5, y + 4); ctx.lineTo(x + 5, y + 4); ctx.fill();
    }
  });
  ctx.restore();
}

function readout(page, idx, u) {
  if (idx == null) return;
  const t = u.data[0][idx];
  const step = page.run.steps.filter((s) => s.start <= t && (s.end === null || t < s.end)).pop();
  let text = fmtTime(t, page.run.started, page.clock) + (step ? "  step " + step.no + " " + step.name : "");
  for (const p of page.panels) {
    const ch = p.chart;
    const i = ch === u ? idx : ch.valToIdx(t);
    p.params.forEach((par, k) => {
      const v = ch.data[k + 1][i];
      const bad = p.series[k].spans.some((sp) => sp[2] === "bad" && sp[0] <= t && t <= sp[1]);
      text += "\n" + par.name + " = " + (v == null ? "-" : v) + " " + par.units + (bad ? "  quality bad" : "  quality good");
    });
  }
  $("readout").textContent = text;
}

async function aldrecRunPage() {
  const page = { clock: qs.get("clock") || "rel", panels: [], window: null };
  window.aldrec.page = page;
  const runId = qs.get("run");
  try {
    page.run = await getJSON("/api/run?run=" + encodeURIComponent(runId || ""));
  } catch (e) { showError(e); return; }
  const run = page.run;
  page.now = run.ended || run.now;
  $("title").textContent = "run " + run.run + " — " + run.machine + ", " + run.recipe + (run.lot ? ", lot " + run.lot : "");
  $("clock").value = page.clock;
  const all = run.params;
  let chosen = qs.get("param") ? qs.get("param").split(",") : all.slice(0, 4).map((p) => p.name);
  const ch = $("chooser");
  for (const p of all) {
    const l = document.createElement("label"), c = document.createElement("input");
    c.type = "checkbox"; c.value = p.name; c.checked = chosen.includes(p.name);
    c.onchange = () => { chosen = [...ch.querySelectorAll("input:checked")].map((x) => x.value); build(); };
    l.appendChild(c); l.append(" " + p.name + (p.units ? " [" + p.units + "]" : "")); ch.appendChild(l);
  }
  $("clock").onchange = () => { page.clock = $("clock").value; build(); };
  if (qs.get("from") && qs.get("to")) page.window = [Number(qs.get("from")), Number(qs.get("to"))];

  function links() {
    const u = new URLSearchParams({ run: run.run, param: chosen.join(","), clock: page.clock });
    const e = new URLSearchParams({ run: run.run, param: chosen.join(",") });
    if (page.window) {
      u.set("from", page.window[0].toFixed(6)); u.set("to", page.window[1].toFixed(6));
      e.set("from", new Date(page.window[0] * 1000).toISOString()); e.set("to", new Date(page.window[1] * 1000).toISOString());
    }
    $("permalink").href = "/run.html?" + u; $("export").href = "/api/export.csv?" + e;
    history.replaceState(null, "", "/run.html?" + u);
  }

  async function fetchSeries(width) {
    const u = new URLSearchParams({ run: run.run, param: chosen.join(","), width: String(width) });
    if (page.window) {
      u.set("from", new Date(page.window[0] * 1000).toISOString());
      u.set("to", new Date(page.window[1] * 1000 + 1).toISOString());
    }
    return getJSON("/api/series?" + u);
  }

  async function build() {
    $("panels").textContent = ""; page.panels = []; window.aldrec.charts = [];
    window.aldrec.ready = false;
    links();
    if (!chosen.length) { window.aldrec.ready = true; return; }
    const width = Math.max(400, document.body.clientWidth - 20);
    let data;
    try { data = await fetchSeries(width - 80); } catch (e) { showError(e); return; }
    page.lastSeries = data;
    const byUnit = new Map();
    data.series.forEach((s) => {
      const p = all.find((x) => x.name === s.name);
      if (!byUnit.has(s.units)) byUnit.set(s.units, { units: s.units, params: [], series: [] });
      byUnit.get(s.units).params.push(p); byUnit.get(s.units).series.push(s);
    });
    const sync = uPlot.sync("run");
    for (const panel of byUnit.values()) {
      const div = document.createElement("div"); div.className = "panel";
      const h = document.createElement("h2"); h.textContent = panel.units || "(no unit)"; div.appendChild(h);
      $("panels").appendChild(div);
      const opts = {
        width, height: 220,
        scales: { x: { time: false, range: () => [data.from, data.to] } },
        axes: [{ values: (u, ticks) => ticks.map((t) => fmtTime(t, run.started, page.clock)) }, { label: panel.units }],
        series: [{ label: "time", value: (u, t) => t == null ? "-" : fmtTime(t, run.started, page.clock) }]
          .concat(panel.params.map((p, i) => ({ label: p.name + (p.units ? " [" + p.units + "]" : ""),
            stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, points: { show: false } }))),
        cursor: { sync: { key: sync.key }, drag: { x: true, y: false, setScale: false } },
        hooks: {
          draw: [(u) => drawOverlay(u, page, panel)],
          setCursor: [(u) => readout(page, u.cursor.idx, u)],
          setSelect: [(u) => {
            if (u.select.width < 2) return;
            const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
            page.window = [a, b]; build();
          }],
        },
      };
      panel.chart = new uPlot(opts, panelData(panel.series), div);
      panel.chart.over.addEventListener("dblclick", () => { page.window = null; build(); });
      page.panels.push(panel); window.aldrec.charts.push(panel.chart);
    }
    window.aldrec.ready = true;
  }
  await build();
  /* A running process is followed: new samples every second. */
  if (run.status === "running") {
    $("livebadge").innerHTML = '<span class="live">live</span>';
    setInterval(async () => {
      if (page.window) return;
      try {
        page.run = await getJSON("/api/run?run=" + run.run);
        Object.assign(run, page.run); page.now = run.ended || run.now;
        const data = await fetchSeries(page.panels.length ? page.panels[0].chart.bbox.width / devicePixelRatio : 800);
        page.lastSeries = data;
        for (const p of page.panels) {
          p.series = p.params.map((par) => data.series.find((s) => s.id === par.id));
          p.chart.setScale("x", { min: data.from, max: data.to });
          p.chart.setData(panelData(p.series));
        }
        if (run.status !== "running") $("livebadge").textContent = "";
      } catch (e) { showError(e); }
    }, 1000);
  }
}

/* ---- compare page ------------------------------------------------------- */
async function aldrecComparePage() {
  const u = new URLSearchParams();
  for (const k of ["runs", "refs", "param", "step", "k", "bucket"]) if (qs.get(k)) u.set(k, qs.get(k));
  let c;
  try { c = await getJSON("/api/compare?" + u); } catch (e) { showError(e); return; }
  window.aldrec.compare = c;
  const p = c.param[0];
  $("title").textContent = "compare " + p.name + " — runs " + c.runs.map((r) => r.run).join(", ") +
    (c.step !== null ? ", aligned at step " + c.step : ", aligned at the start");
  const tables = c.traces.map((t) => [t.offset_s, t.mean]);
  const env = c.envelope;
  tables.push([env.offset_s, env.lo], [env.offset_s, env.hi]);
  const data = uPlot.join(tables);
  const n = c.traces.length;
  /* where a run leaves the envelope: a marker at its value */
  const outside = [];
  for (let r = 0; r < n; r++) {
    const col = data[0].map((x, i) => {
      const v = data[r + 1][i], lo = data[n + 1][i], hi = data[n + 2][i];
      if (v == null || lo == null || hi == null) return null;
      if (v < lo || v > hi) { outside.push({ run: c.traces[r].run, offset_s: x, value: v }); return v; }
      return null;
    });
    data.push(col);
  }
  window.aldrec.outside = outside;
  const width = Math.max(400, document.body.clientWidth - 20);
  const series = [{ label: "offset s" }]
    .concat(c.traces.map((t, i) => ({ label: "run " + t.run + (i === 0 ? " (reference)" : ""), stroke: COLORS[i % COLORS.length], width: 1.5 })))
    .concat([{ label: "envelope −" + c.k + "σ", stroke: "#999", dash: [4, 4] }, { label: "envelope +" + c.k + "σ", stroke: "#999", dash: [4, 4] }])
    .concat(c.traces.map((t) => ({ label: "outside " + t.run, stroke: "transparent", points: { show: true, size: 7, fill: "#d00" } })));
  const div = document.createElement("div"); div.className = "panel"; $("panels").appendChild(div);
  const main = new uPlot({ width, height: 300, scales: { x: { time: false } }, series,
    bands: [{ series: [n + 2, n + 1], fill: "rgba(128,128,128,0.15)" }],
    axes: [{}, { label: p.units }], cursor: { sync: { key: "cmp" } } }, data, div);
  /* differences to the reference run (the first) */
  const diff = [data[0]];
  for (let r = 1; r < n; r++) diff.push(data[0].map((x, i) => data[r + 1][i] == null || data[1][i] == null ? null : data[r + 1][i] - data[1][i]));
  const div2 = document.createElement("div"); div2.className = "panel"; $("panels").appendChild(div2);
  const dchart = new uPlot({ width, height: 180, scales: { x: { time: false } },
    series: [{ label: "offset s" }].concat(c.traces.slice(1).map((t, i) => ({ label: "run " + t.run + " − reference", stroke: COLORS[(i + 1) % COLORS.length] }))),
    axes: [{}, { label: "Δ " + p.units }], cursor: { sync: { key: "cmp" } } }, diff, div2);
  $("outside").textContent = outside.length + " instants outside the envelope";
  window.aldrec.charts = [main, dchart];
  window.aldrec.ready = true;
}

/* No inline script (the Content-Security-Policy allows only our files). */
({ runs: aldrecRunsPage, run: aldrecRunPage, compare: aldrecComparePage })[document.body.dataset.page]();
