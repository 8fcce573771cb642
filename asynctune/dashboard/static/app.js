// asynctune dashboard: polls the JSON API every 2 s and redraws what changed.
"use strict";

const POLL_MS = 2000;
const MARKS = { STOP: "#d64545", PAUSE: "#d98a00", RESUME: "#1f9d55", MUTATE: "#8e44ad" };
const state = { experiments: [], selected: null, compare: new Set(), last: {}, charts: {}, sort: null, busy: false };

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const color = (i) => `hsl(${(i * 137.508) % 360}, 62%, 46%)`;
const api = (path) => fetch("/api/" + path, { cache: "no-store" }).then((r) => (r.ok ? r.text() : Promise.reject(new Error(`${path}: HTTP ${r.status}`))));
const enc = encodeURIComponent;

function fmt(v) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toPrecision(4).replace(/\.?0+$/, "");
  }
  return String(v);
}

function duration(s) {
  if (s == null) return "";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${r}s` : `${r}s`;
}

// Only redraw a view when its API answer changed: hovering and zoom survive the polling.
async function changed(key, path) {
  const text = await api(path);
  if (state.last[key] === text) return null;
  state.last[key] = text;
  return JSON.parse(text);
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const listing = await changed("experiments", "experiments");
    if (listing) renderExperiments(listing);
    if (state.selected) {
      const name = enc(state.selected);
      const [trials, curves] = await Promise.all([changed("trials", `experiments/${name}/trials`),
                                                  changed("curves", `experiments/${name}/curves`)]);
      if (trials) { renderSummary(trials.experiment, trials.trials); renderTrials(trials.experiment, trials.trials);
                    renderParcoords(trials.experiment, trials.trials); renderPareto(trials.experiment, trials.trials); }
      if (curves) { renderCurves(curves); renderBest(curves); }
    }
    await refreshCompare();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("updated").textContent = "cannot reach the server: " + err.message;
  } finally {
    state.busy = false;
  }
}

// Experiments ------------------------------------------------------------------------------------

function renderExperiments(listing) {
  state.experiments = listing.experiments;
  $("root").textContent = listing.root;
  $("empty").classList.toggle("hidden", listing.experiments.length > 0);
  const names = listing.experiments.map((e) => e.name);
  const fromHash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  // The URL names the experiment to show (a run may write it only after the page opened).
  if (names.includes(fromHash) && fromHash !== state.selected) { state.selected = fromHash; state.sort = null; }
  else if (!names.includes(state.selected)) state.selected = names[names.length - 1] || null;
  const ul = $("experiments");
  ul.innerHTML = listing.experiments.map((e) => `
    <li data-name="${esc(e.name)}" class="${e.name === state.selected ? "selected" : ""}">
      <input type="checkbox" title="compare" ${state.compare.has(e.name) ? "checked" : ""}>
      <div><div class="name">${esc(e.name)}</div>
      <div class="meta">${esc(e.status)} · ${esc(e.trials)} trials${e.best != null ? ` · best ${esc(e.metric)} ${esc(fmt(e.best))}` : ""}</div></div>
    </li>`).join("");
  for (const li of ul.children) {
    const name = li.dataset.name;
    li.querySelector("input").addEventListener("click", (ev) => {
      ev.stopPropagation();
      ev.target.checked ? state.compare.add(name) : state.compare.delete(name);
      delete state.last.compare;
      refresh();
    });
    li.addEventListener("click", () => select(name));
  }
}

function select(name) {
  if (name === state.selected) return;
  state.selected = name;
  state.sort = null;
  location.hash = "#/" + enc(name);
  for (const key of ["experiments", "trials", "curves"]) delete state.last[key];
  refresh();
}

function renderSummary(exp, trials) {
  const counts = (exp.statuses || []).filter((s) => exp[s])
    .map((s) => `${exp[s]} ${s.toLowerCase()}`).join(", ");
  const stats = [
    ["status", esc(exp.status)], ["trials", `${esc(exp.trials)} <span class="muted">${esc(counts)}</span>`],
    exp.pareto_front != null ? ["Pareto front", `${esc(exp.pareto_front)} <span class="muted">non-dominated trials</span>`] :
    ["best " + esc(exp.metric || ""), exp.best != null ? `${esc(fmt(exp.best))} <span class="muted">${esc(exp.best_trial_id)}</span>` : "–"],
    ["scheduler · searcher", `${esc(exp.scheduler || "")} <span class="muted">· ${esc(exp.searcher || "")}</span>`],
    ["time used", esc(duration(exp.time_used_s))],
  ];
  $("summary").innerHTML = `<h2 class="title">${esc(exp.name)}</h2>` +
    stats.map(([l, v]) => `<div class="stat"><div class="label">${l}</div><div class="value">${v}</div></div>`).join("");
  $("trial-count").textContent = `${trials.length}`;
}

// Trial table --------------------------------------------------------------------------------------

function renderTrials(exp, trials) {
  const keys = [...new Set(trials.flatMap((t) => Object.keys(t.config)))];
  const columns = [
    { id: "trial_id", label: "trial", get: (t) => t.trial_id },
    { id: "status", label: "status", get: (t) => t.status, html: (t) => `<span class="status ${esc(t.status)}">${esc(t.status)}</span>` },
    ...keys.map((k) => ({ id: "config/" + k, label: k, get: (t) => t.config[k], num: true })),
    { id: "iteration", label: "iter", get: (t) => t.iteration, num: true },
    { id: "latest", label: `${exp.metric || "metric"} (latest)`, get: (t) => t.latest, num: true },
    { id: "best", label: `${exp.metric || "metric"} (best)`, get: (t) => t.best, num: true },
    { id: "decisions", label: "decisions", get: (t) => t.decisions.length,
      html: (t) => t.decisions.filter((d) => !(d.decision === "STOP" && d.early === false))  // at max_t: it finished
        .map((d) => `<span class="chip ${esc(d.decision)}" title="${esc(d.detail)}">${esc(d.decision)}${d.iteration != null ? " @" + esc(d.iteration) : ""}</span>`).join("") +
                   (t.error ? `<span class="chip STOP" title="${esc(t.error)}">error</span>` : "") },
  ];
  if (!state.sort) state.sort = exp.metric ? { id: "best", asc: exp.mode === "min" } : { id: "trial_id", asc: true };
  const col = columns.find((c) => c.id === state.sort.id) || columns[0];
  const rows = [...trials].sort((a, b) => {
    const x = col.get(a), y = col.get(b);
    if (x == null || x === "") return 1;
    if (y == null || y === "") return -1;
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return state.sort.asc ? c : -c;
  });
  const head = `<tr>${columns.map((c) => `<th data-id="${esc(c.id)}" class="${c.id === col.id ? "sorted" + (state.sort.asc ? " asc" : "") : ""}">${esc(c.label)}</th>`).join("")}</tr>`;
  const body = rows.map((t) => `<tr data-trial="${esc(t.trial_id)}" class="${t.trial_id === exp.best_trial_id ? "best" : ""}">${columns.map((c) =>
    `<td class="${c.num ? "num" : ""}">${c.html ? c.html(t) : esc(fmt(c.get(t)))}</td>`).join("")}</tr>`).join("");
  const table = $("trials");
  table.innerHTML = `<thead>${head}</thead><tbody>${body}</tbody>`;
  for (const th of table.querySelectorAll("th")) {
    th.addEventListener("click", () => {
      state.sort = { id: th.dataset.id, asc: state.sort.id === th.dataset.id ? !state.sort.asc : true };
      renderTrials(exp, trials);
    });
  }
  for (const tr of table.querySelectorAll("tbody tr")) tr.addEventListener("mouseenter", () => focusTrial(tr.dataset.trial));
}

// Charts (uPlot) -----------------------------------------------------------------------------------

function chartSize(el, height = 300) {
  return { width: Math.max(300, el.clientWidth), height };
}

function mount(key, el, opts, data) {
  const old = state.charts[key];
  if (old && old.signature === opts.signature) {
    old.setData(data);
    return old;
  }
  if (old) old.destroy();
  el.innerHTML = "";
  const chart = new uPlot({ ...chartSize(el), ...opts }, data, el);
  chart.signature = opts.signature;
  state.charts[key] = chart;
  return chart;
}

function renderCurves(curves) {
  $("curves-metric").textContent = curves.metric ? `${curves.metric} against training_iteration` : "(no metric)";
  const ids = Object.keys(curves.curves);
  const xs = [...new Set(ids.flatMap((id) => curves.curves[id].map((r) => r[0])))].filter((x) => x != null).sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = ids.map((id) => {
    const y = new Array(xs.length).fill(null);
    for (const [it, , v] of curves.curves[id]) if (index.has(it)) y[index.get(it)] = v;
    return y;
  });
  state.curveValues = new Map(ids.map((id, i) => [id, ys[i]]));
  state.curveIndex = index;
  state.decisions = curves.decisions;
  const chart = mount("curves", $("curves"), {
    signature: ids.join(",") + "|" + curves.metric,
    legend: { show: false },
    cursor: { focus: { prox: 12 }, points: { size: 6 } },
    focus: { alpha: 0.25 },
    scales: { x: { time: false } },
    axes: [{ label: "training_iteration" }, { label: curves.metric || "", size: 60 }],
    series: [{ label: "iteration" }, ...ids.map((id, i) => ({ label: id, stroke: color(i), width: 1.4, spanGaps: true,
                                                         points: { show: curves.curves[id].length < 3, size: 5 } }))],
    hooks: {
      draw: [drawDecisionMarks],
      setSeries: [(u, i) => { $("hovered").textContent = i ? "· " + u.series[i].label : ""; highlightRow(i ? u.series[i].label : null); }],
    },
  }, [xs, ...ys]);
  state.curveIds = ids;
  return chart;
}

// The scheduler's decisions, marked where each was taken on the trial's curve.
function drawDecisionMarks(u) {
  const ctx = u.ctx, r = 4.5 * uPlot.pxRatio;
  ctx.save();
  for (const d of state.decisions || []) {
    const y = state.curveValues.get(d.trial_id), i = state.curveIndex.get(d.iteration);
    if (!y || i === undefined || y[i] == null) continue;
    const cx = u.valToPos(d.iteration, "x", true), cy = u.valToPos(y[i], "y", true);
    ctx.fillStyle = ctx.strokeStyle = MARKS[d.decision] || "#555";
    ctx.lineWidth = 2 * uPlot.pxRatio;
    ctx.beginPath();
    if (d.decision === "STOP" && d.early === false) continue;  // it reached max_t: finished, not stopped
    if (d.decision === "STOP") { ctx.moveTo(cx - r, cy - r); ctx.lineTo(cx + r, cy + r); ctx.moveTo(cx + r, cy - r); ctx.lineTo(cx - r, cy + r); ctx.stroke(); continue; }
    if (d.decision === "PAUSE") ctx.rect(cx - r * 0.8, cy - r * 0.8, r * 1.6, r * 1.6);
    else if (d.decision === "RESUME") { ctx.moveTo(cx, cy - r); ctx.lineTo(cx + r, cy + r * 0.8); ctx.lineTo(cx - r, cy + r * 0.8); ctx.closePath(); }
    else { ctx.moveTo(cx, cy - r); ctx.lineTo(cx + r, cy); ctx.lineTo(cx, cy + r); ctx.lineTo(cx - r, cy); ctx.closePath(); }
    ctx.fill();
  }
  ctx.restore();
}

function focusTrial(trialId) {
  const chart = state.charts.curves;
  if (!chart || !state.curveIds) return;
  const i = state.curveIds.indexOf(trialId);
  if (i >= 0) chart.setSeries(i + 1, { focus: true });
}

function highlightRow(trialId) {
  for (const tr of document.querySelectorAll("#trials tr.hover")) tr.classList.remove("hover");
  if (trialId) document.querySelector(`#trials tr[data-trial="${CSS.escape(trialId)}"]`)?.classList.add("hover");
}

function stepSeries(label, i) {
  return { label, stroke: color(i), width: 2, spanGaps: true, paths: uPlot.paths.stepped({ align: 1 }), points: { show: true, size: 5 } };
}

function renderBest(curves) {
  const rows = curves.best_so_far;
  mount("best", $("best"), {
    signature: "best|" + curves.metric,
    legend: { show: false },
    scales: { x: { time: false } },
    axes: [{ label: "seconds since the first trial started" }, { label: `best ${curves.metric || ""}`, size: 60 }],
    series: [{ label: "time" }, stepSeries(curves.metric || "best", 0)],
  }, [rows.map((r) => r[0]), rows.map((r) => r[1])]);
}

async function refreshCompare() {
  const names = [...state.compare].filter((n) => state.experiments.some((e) => e.name === n));
  $("compare-hint").classList.toggle("hidden", names.length >= 2);
  if (names.length < 2) {
    if (state.charts.compare) { state.charts.compare.destroy(); delete state.charts.compare; }
    delete state.last.compare;
    return;
  }
  const answers = await Promise.all(names.map((n) => api(`experiments/${enc(n)}/best_so_far`)));
  const text = answers.join("\n");
  if (state.last.compare === text) return;
  state.last.compare = text;
  const tables = answers.map((a) => JSON.parse(a)).map((b) => [b.best_so_far.map((r) => r[0]), b.best_so_far.map((r) => r[1])])
    .filter((t) => t[0].length);
  if (tables.length < 1) return;
  const data = uPlot.join(tables);
  mount("compare", $("compare"), {
    signature: "compare|" + names.join(","),
    legend: { show: true, live: false },
    scales: { x: { time: false } },
    axes: [{ label: "seconds since each experiment's first trial" }, { label: "best so far", size: 60 }],
    series: [{ label: "time" }, ...names.map((n, i) => stepSeries(n, i))],
  }, data);
}

// Parallel coordinates: one axis per hyperparameter that varies, the best metric last ---------------

// A cleared 2-D context on a canvas sized to its box (sharp on high-DPI screens).
function canvasContext(id) {
  const canvas = $(id);
  const dpr = window.devicePixelRatio || 1;
  const W = Math.max(300, canvas.clientWidth), H = 300;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, W, H);
  return { ctx, W, H };
}

function renderParcoords(exp, trials) {
  const { ctx, W, H } = canvasContext("parcoords");
  const value = (t) => (t.best != null ? t.best : t.latest);
  const scored = trials.filter((t) => value(t) != null);
  const keys = [...new Set(trials.flatMap((t) => Object.keys(t.config)))]
    .filter((k) => new Set(trials.map((t) => JSON.stringify(t.config[k]))).size > 1);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#6b7385";
  if (!scored.length || !exp.metric) { ctx.fillText("no trial has reported the metric yet", 12, 24); return; }
  const axes = [...keys.map((k) => axis(k, scored.map((t) => t.config[k]))),
                axis(exp.metric, scored.map(value), true)];
  const top = 44, bottom = H - 26, left = 50, right = W - 50;
  const step = axes.length > 1 ? (right - left) / (axes.length - 1) : 0;
  const metricAxis = axes[axes.length - 1];
  // Draw the worst first, so the best lines lie on top.
  const quality = (t) => { const q = metricAxis.pos(value(t)); return exp.mode === "min" ? 1 - q : q; };
  for (const t of [...scored].sort((a, b) => quality(a) - quality(b))) {
    const q = quality(t);
    ctx.strokeStyle = `hsla(${220 - 200 * q}, 75%, ${55 - 10 * q}%, ${0.35 + 0.6 * q})`;
    ctx.lineWidth = 1 + 1.5 * q;
    ctx.beginPath();
    axes.forEach((a, i) => {
      const v = i === axes.length - 1 ? value(t) : t.config[a.key];
      const y = bottom - a.pos(v) * (bottom - top);
      i ? ctx.lineTo(left + i * step, y) : ctx.moveTo(left, y);
    });
    ctx.stroke();
  }
  ctx.textAlign = "center";
  axes.forEach((a, i) => {
    const x = left + i * step;
    ctx.strokeStyle = "#9aa3b5"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
    ctx.fillStyle = "#1d2330"; ctx.font = "600 12px system-ui, sans-serif";
    ctx.fillText(a.key + (a.log ? " (log)" : ""), x, top - 24);
    ctx.fillStyle = "#6b7385"; ctx.font = "11px system-ui, sans-serif";
    for (const [label, p] of a.ticks) ctx.fillText(label, x, bottom - p * (bottom - top) + (p === 0 ? 15 : p === 1 ? -6 : 4));
  });
}

// An axis maps a value to [0, 1]: numbers linearly (log when they span two decades), others by category.
function axis(key, values, isMetric = false) {
  const nums = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (nums.length === values.length && nums.length) {
    let lo = Math.min(...nums), hi = Math.max(...nums);
    const log = !isMetric && lo > 0 && hi / lo >= 100;
    const f = log ? Math.log10 : (v) => v;
    const a = f(lo), b = f(hi);
    const pos = (v) => (b === a ? 0.5 : (f(v) - a) / (b - a));
    return { key, log, pos, ticks: b === a ? [[fmt(lo), 0.5]] : [[fmt(lo), 0], [fmt(hi), 1]] };
  }
  const cats = [...new Set(values.map((v) => JSON.stringify(v)))].sort();
  const pos = (v) => (cats.length === 1 ? 0.5 : cats.indexOf(JSON.stringify(v)) / (cats.length - 1));
  return { key, log: false, pos, ticks: cats.map((c) => [c.replace(/^"|"$/g, ""), pos(JSON.parse(c))]) };
}

// Several metrics: every trial's latest values of the first two, the front (by the server) in red,
// joined by the line of what it dominates.
function renderPareto(exp, trials) {
  const shown = !!(exp.objectives && exp.objectives.length >= 2);
  $("pareto-card").classList.toggle("hidden", !shown);
  if (!shown) return;
  const [ox, oy] = exp.objectives;
  const pts = trials.filter((t) => t.objectives && t.status !== "ERROR" &&
    Number.isFinite(t.objectives[ox.metric]) && Number.isFinite(t.objectives[oy.metric]))
    .map((t) => ({ x: t.objectives[ox.metric], y: t.objectives[oy.metric], front: t.pareto }));
  const { ctx, W, H } = canvasContext("pareto");
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#6b7385";
  if (!pts.length) { ctx.fillText("no trial has reported the metrics yet", 12, 24); return; }
  const ax = axis(ox.metric, pts.map((p) => p.x), true), ay = axis(oy.metric, pts.map((p) => p.y), true);
  const left = 60, right = W - 20, top = 20, bottom = H - 40;
  const X = (v) => left + ax.pos(v) * (right - left), Y = (v) => bottom - ay.pos(v) * (bottom - top);
  const front = pts.filter((p) => p.front).sort((a, b) => a.x - b.x);
  ctx.strokeStyle = "#d64545"; ctx.lineWidth = 1.2;
  ctx.beginPath();
  front.forEach((p, i) => {  // a staircase, level with the neighbour better in x
    if (!i) { ctx.moveTo(X(p.x), Y(p.y)); return; }
    const prev = front[i - 1];
    ox.mode === "min" ? ctx.lineTo(X(p.x), Y(prev.y)) : ctx.lineTo(X(prev.x), Y(p.y));
    ctx.lineTo(X(p.x), Y(p.y));
  });
  ctx.stroke();
  for (const p of [...pts.filter((q) => !q.front), ...front]) {
    ctx.fillStyle = p.front ? "#d64545" : "rgba(107, 115, 133, 0.5)";
    ctx.beginPath(); ctx.arc(X(p.x), Y(p.y), p.front ? 4 : 2.5, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.fillStyle = "#1d2330"; ctx.textAlign = "center";
  ctx.fillText(`${ox.metric} (${ox.mode})`, (left + right) / 2, H - 8);
  for (const [label, p] of ax.ticks) ctx.fillText(label, left + p * (right - left), bottom + 16);
  ctx.save(); ctx.translate(14, (top + bottom) / 2); ctx.rotate(-Math.PI / 2);
  ctx.fillText(`${oy.metric} (${oy.mode})`, 0, 0); ctx.restore();
  ctx.textAlign = "right";
  for (const [label, p] of ay.ticks) ctx.fillText(label, left - 6, bottom - p * (bottom - top) + 4);
  ctx.textAlign = "left"; ctx.fillStyle = "#6b7385";
  const more = exp.objectives.length > 2 ? `; first 2 of ${exp.objectives.length} metrics` : "";
  ctx.fillText(`${front.length} of ${pts.length} trials on the front (latest results${more})`, left + 6, top + 4);
}

window.addEventListener("resize", () => {
  for (const [key, chart] of Object.entries(state.charts)) chart.setSize(chartSize(chart.root.parentElement));
  delete state.last.trials;
});
window.addEventListener("hashchange", () => {
  const name = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  if (name && state.experiments.some((e) => e.name === name)) select(name);
});
refresh();
setInterval(refresh, POLL_MS);
