// dealstream dashboard: keeps the published series pushed by /events (server-sent events)
// and draws the selected view. Every label comes from CRMs, so the DOM is built with
// createElement/textContent only (never innerHTML). Nothing here sends anything but GETs.
"use strict";

const METRICS = [
  { id: "new_opportunities", label: "New opportunities", fmt: "count" },
  { id: "qualified_leads", label: "Qualified leads", fmt: "count" },
  { id: "qualification_rate", label: "Qualification rate", fmt: "pct", detail: (p) => ratio(p, "qualified", "deals") },
  { id: "win_rate", label: "Win rate", fmt: "pct", detail: (p) => ratio(p, "won", "closed") },
  { id: "revenue", label: "Revenue", fmt: "money", detail: (p) => count(p.count, "won deal") },
  { id: "deal_size", label: "Deal size (mean)", fmt: "money",
    detail: (p) => count(p.count, "deal") + (p.p50 != null ? " · median " + money(p.p50) : "") },
  { id: "average_order_value", label: "Average order value", fmt: "money", detail: (p) => count(p.count, "won deal") },
  { id: "sales_cycle_length", label: "Sales cycle", fmt: "days",
    detail: (p) => count(p.count, "won deal") + (p.p50 != null ? " · median " + days(p.p50) : "") },
  { id: "sales_velocity", label: "Sales velocity", fmt: "velocity",
    detail: (p) => p.opportunities != null ? count(p.opportunities, "opportunity", "opportunities") : "" },
  { id: "roi", label: "ROI", fmt: "pct",
    detail: (p) => (p.revenue != null ? money(p.revenue) : "—") + " revenue / " + (p.spend != null ? money(p.spend) : "—") + " spend" },
  { id: "customer_retention_rate", label: "Customer retention", fmt: "pct",
    detail: (p) => p.start != null ? `start ${int(p.start)} · end ${int(p.end)} · new ${int(p.new)}` : "" },
];
const BOARD_COLUMNS = [
  { id: "key", label: "Name" },
  { id: "revenue", label: "Revenue", fmt: "money", get: (k) => v(k, "revenue") },
  { id: "win_rate", label: "Win rate", fmt: "pct", get: (k) => v(k, "win_rate") },
  { id: "won", label: "Won deals", fmt: "count", get: (k) => field(k, "revenue", "count") },
  { id: "deals", label: "New deals", fmt: "count", get: (k) => v(k, "new_opportunities") },
  { id: "cycle", label: "Cycle", fmt: "days", get: (k) => v(k, "sales_cycle_length") },
];
const DIMENSION_NAMES = { all: "Everyone", team: "Team", owner: "Rep", pipeline: "Pipeline", lead_source: "Lead source", source: "CRM source" };
const STALE_AFTER_MS = 3000;

const $ = (id) => document.getElementById(id);
const series = new Map();           // topic -> payload, as published
let index = null;                   // rebuilt lazily after changes
let settings = { currency: null, pipelines: {} };
let position = null;                // last position event, with receivedAt
let streamOpen = false;
let rendered = false;
const view = { period: "all", dimension: "all", key: "*", pipeline: "", trendMetric: "revenue", trendGrain: "month" };
const sorting = { owner: { column: "revenue", descending: true }, team: { column: "revenue", descending: true } };
// For tests and measurements: when each tile value last changed (Date.now()).
window.dealstream = { changedAt: {}, renders: 0, series };

// ---------- formatting ----------
function int(n) { return n == null ? "—" : Math.round(n).toLocaleString("en-US"); }
function count(n, one, many) { return n == null ? "" : `${int(n)} ${n === 1 ? one : (many || one + "s")}`; }
function pct(x) { return x == null ? "—" : (x * 100).toFixed(1) + " %"; }
function days(x) { return x == null ? "—" : x.toFixed(1) + " days"; }
const SYMBOLS = { USD: "$", EUR: "€", GBP: "£", JPY: "¥", INR: "₹" };
function money(x) {
  if (x == null) return "—";
  const digits = Math.abs(x) >= 1000 ? 0 : 2;
  const text = Math.abs(x).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const c = settings.currency;
  const symbol = c ? (SYMBOLS[c] || c + " ") : "";
  return (x < 0 ? "−" : "") + symbol + text;
}
function format(kind, x) {
  switch (kind) {
    case "count": return int(x);
    case "pct": return pct(x);
    case "money": return money(x);
    case "days": return days(x);
    case "velocity": return x == null ? "—" : money(x) + "/day";
    default: return String(x);
  }
}
function ratio(p, top, bottom) { return p.denominator != null ? `${int(p.numerator)} ${top} / ${int(p.denominator)} ${bottom}` : ""; }

// ---------- periods ----------
function thisMonth() { const d = new Date(); return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`; }
function thisQuarter() { const d = new Date(); return `${d.getUTCFullYear()}-Q${Math.floor(d.getUTCMonth() / 3) + 1}`; }
function isMonth(p) { return /^\d{4}-\d{2}$/.test(p); }
function isQuarter(p) { return /^\d{4}-Q[1-4]$/.test(p); }
function previousPeriod(p) {
  if (isMonth(p)) {
    let y = +p.slice(0, 4), m = +p.slice(5) - 1;
    if (m === 0) { y -= 1; m = 12; }
    return `${y}-${String(m).padStart(2, "0")}`;
  }
  if (isQuarter(p)) {
    let y = +p.slice(0, 4), q = +p.slice(6) - 1;
    if (q === 0) { y -= 1; q = 4; }
    return `${y}-Q${q}`;
  }
  return null;
}
function periodLabel(p) {
  if (p === "all") return "all time";
  if (p === thisMonth()) return `this month (${p})`;
  if (p === thisQuarter()) return `this quarter (${p})`;
  return p;
}

// ---------- the index over the series ----------
function buildIndex() {
  const metrics = {}, conversions = {}, keys = {}, periods = new Set();
  for (const p of series.values()) {
    if (p == null || p.removed) continue;
    const dim = p.dimension, key = p.key, period = p.period;
    if (typeof dim !== "string" || typeof key !== "string" || typeof period !== "string") continue;
    periods.add(period);
    (keys[dim] || (keys[dim] = new Set())).add(key);
    if (p.metric === "stage_conversion") {
      const byPipe = conversions[p.pipeline] || (conversions[p.pipeline] = {});
      const k = dim + "\u0000" + key + "\u0000" + period;
      (byPipe[k] || (byPipe[k] = [])).push(p);
    } else {
      const m = metrics[p.metric] || (metrics[p.metric] = new Map());
      m.set(dim + "\u0000" + key + "\u0000" + period, p);
    }
  }
  return { metrics, conversions, keys, periods };
}
function idx() { if (!index) index = buildIndex(); return index; }
function get(metric, dim, key, period) {
  const m = idx().metrics[metric];
  return m ? m.get(dim + "\u0000" + key + "\u0000" + period) : undefined;
}
// For the leaderboards: the view's period, the board's dimension.
let boardDimension = "owner";
function v(key, metric) { const p = get(metric, boardDimension, key, view.period); return p ? p.value : null; }
function field(key, metric, name) { const p = get(metric, boardDimension, key, view.period); return p ? p[name] : null; }

// ---------- DOM helpers ----------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, val] of Object.entries(attrs || {})) {
    if (k === "class") e.className = val; else if (k === "text") e.textContent = val; else e.setAttribute(k, val);
  }
  for (const c of children) if (c != null) e.append(c);  // strings become text nodes
  return e;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) { const e = document.createElementNS(SVG, tag); for (const [k, val] of Object.entries(attrs)) e.setAttribute(k, val); return e; }
function setValue(node, text, raw, changeKey) {
  const rawText = raw == null ? "null" : String(raw);
  if (rendered && node.dataset.value !== undefined && node.dataset.value !== rawText) {
    node.classList.remove("flash");
    void node.offsetWidth;  // restart the animation
    node.classList.add("flash");
    node.dataset.changedAt = String(Date.now());
    if (changeKey) window.dealstream.changedAt[changeKey] = Date.now();
  }
  node.dataset.value = rawText;
  if (node.textContent !== text) node.textContent = text;
}
function fillSelect(select, options, selected) {
  // options: [{value, text}] or {group, options}
  const want = JSON.stringify(options);
  if (select.dataset.options !== want) {
    select.replaceChildren();
    for (const o of options) {
      if (o.group) {
        const g = el("optgroup", { label: o.group });
        for (const x of o.options) g.append(el("option", { value: x.value, text: x.text }));
        select.append(g);
      } else {
        select.append(el("option", { value: o.value, text: o.text }));
      }
    }
    select.dataset.options = want;
  }
  select.value = selected;
}

// ---------- rendering ----------
function renderPickers() {
  const { keys, periods } = idx();
  const months = [...periods].filter(isMonth).sort().reverse();
  const quarters = [...periods].filter(isQuarter).sort().reverse();
  const tm = thisMonth(), tq = thisQuarter();
  fillSelect($("period"), [
    { value: tm, text: `This month (${tm})` },
    { value: tq, text: `This quarter (${tq})` },
    { value: "all", text: "All time" },
    { group: "Months", options: months.filter((p) => p !== tm).map((p) => ({ value: p, text: p })) },
    { group: "Quarters", options: quarters.filter((p) => p !== tq).map((p) => ({ value: p, text: p })) },
  ], view.period);
  $("dimension").value = view.dimension;
  const keyed = view.dimension !== "all";
  $("key-label").hidden = !keyed;
  $("key-name").textContent = DIMENSION_NAMES[view.dimension];
  if (keyed) {
    const list = [...(keys[view.dimension] || [])].sort((a, b) => a.localeCompare(b));
    if (!list.includes(view.key)) view.key = list[0] || "";
    fillSelect($("key"), list.map((k) => ({ value: k, text: k })), view.key);
  }
  const pipelines = new Set([...Object.keys(settings.pipelines), ...Object.keys(idx().conversions)]);
  const pipeList = [...pipelines].sort();
  if (!pipelines.has(view.pipeline)) view.pipeline = pipeList[0] || "";
  fillSelect($("pipeline"), pipeList.map((p) => ({ value: p, text: p })), view.pipeline);
  fillSelect($("trend-metric"), METRICS.map((m) => ({ value: m.id, text: m.label })), view.trendMetric);
  $("trend-grain").value = view.trendGrain;
  const who = view.dimension === "all" ? "Everyone" : `${DIMENSION_NAMES[view.dimension]} ${view.key}`;
  $("title").textContent = `${who} · ${periodLabel(view.period)}`;
}

function renderTiles() {
  const box = $("tiles");
  if (box.children.length !== METRICS.length) {
    box.replaceChildren(...METRICS.map((m) => el("div", { class: "tile", "data-metric": m.id },
      el("div", { class: "label", text: m.label }), el("div", { class: "value" }),
      el("div", { class: "detail" }), el("div", { class: "delta" }))));
  }
  const prev = previousPeriod(view.period);
  for (const m of METRICS) {
    const tile = box.querySelector(`[data-metric="${m.id}"]`);
    const p = get(m.id, view.dimension, view.key, view.period);
    tile.classList.toggle("absent", !p);
    setValue(tile.querySelector(".value"), p ? format(m.fmt, p.value) : "no data", p ? p.value : null, m.id);
    const detail = tile.querySelector(".detail");
    const detailText = p && m.detail ? m.detail(p) : "";
    if (detail.textContent !== detailText) detail.textContent = detailText;
    const delta = tile.querySelector(".delta");
    let text = "", cls = "delta";
    if (p && prev) {
      const q = get(m.id, view.dimension, view.key, prev);
      if (q && q.value != null && p.value != null) {
        const change = m.fmt === "pct" ? (p.value - q.value) * 100 : (q.value === 0 ? null : (p.value - q.value) / Math.abs(q.value) * 100);
        if (change == null) text = `new vs ${prev}`;
        else {
          const sign = change > 0 ? "+" : change < 0 ? "−" : "±";
          text = `${sign}${Math.abs(change).toFixed(1)} ${m.fmt === "pct" ? "pp" : "%"} vs ${prev}`;
          const better = m.id === "sales_cycle_length" ? change < 0 : change > 0;
          if (change !== 0) cls += better ? " up" : " down";
        }
      } else text = `no ${prev} value`;
    }
    delta.className = cls;
    delta.dataset.previous = prev || "";
    if (delta.textContent !== text) delta.textContent = text;
  }
}

function stageOrder(pipeline, pairs) {
  const known = settings.pipelines[pipeline];
  if (known && known.length) return known;
  // Without the model: chain the pairs from -> to.
  const next = new Map(pairs.map((p) => [p.from, p.to]));
  const targets = new Set(pairs.map((p) => p.to));
  let start = pairs.map((p) => p.from).find((s) => !targets.has(s));
  const order = [];
  while (start != null && !order.includes(start)) { order.push(start); start = next.get(start); }
  return order;
}

function renderFunnel() {
  const box = $("funnel");
  const byPipe = idx().conversions[view.pipeline] || {};
  const pairs = byPipe[view.dimension + "\u0000" + view.key + "\u0000" + view.period] || [];
  if (!pairs.length) {
    box.replaceChildren(el("div", { class: "empty", text: "No deals of this pipeline in this view." }));
    box.dataset.stages = "";
    return;
  }
  const order = stageOrder(view.pipeline, pairs);
  const byFrom = new Map(pairs.map((p) => [p.from, p]));
  const rows = [];  // {stage, reached, conversion payload into it}
  for (let i = 0; i < order.length; i++) {
    const out = byFrom.get(order[i]);
    const into = i > 0 ? byFrom.get(order[i - 1]) : null;
    const reached = out ? out.denominator : into ? into.numerator : null;
    rows.push({ stage: order[i], reached, into });
  }
  const max = Math.max(1, ...rows.map((r) => r.reached || 0));
  const signature = JSON.stringify(rows.map((r) => [r.stage]));
  if (box.dataset.stages !== signature) {
    box.replaceChildren(...rows.map((r) => {
      const row = el("div", { class: "row", "data-stage": r.stage },
        el("div", { class: "stage", text: r.stage }),
        el("div", { class: "bar" }, el("div", { class: "fill" }), el("span", { class: "count" })));
      row.append(el("div", { class: "conv" }));
      return row;
    }));
    box.dataset.stages = signature;
  }
  rows.forEach((r, i) => {
    const row = box.children[i];
    row.querySelector(".fill").style.width = `${((r.reached || 0) / max) * 100}%`;
    setValue(row.querySelector(".count"), r.reached == null ? "—" : int(r.reached), r.reached, null);
    const conv = row.querySelector(".conv");
    if (r.into) {
      conv.dataset.numerator = String(r.into.numerator);
      conv.dataset.denominator = String(r.into.denominator);
      setValue(conv, `${pct(r.into.value)} of ${r.into.from} reached ${r.stage}`, r.into.value, null);
    } else {
      conv.textContent = "";
    }
  });
}

function renderBoard(dim) {
  boardDimension = dim;
  const table = $("board-" + dim);
  const { keys } = idx();
  const sort = sorting[dim];
  const rows = [...(keys[dim] || [])].filter((k) => BOARD_COLUMNS.some((c) => c.get && get(metricOf(c), dim, k, view.period)))
    .map((k) => ({ key: k, values: BOARD_COLUMNS.map((c) => c.get ? c.get(k) : k) }));
  const col = BOARD_COLUMNS.findIndex((c) => c.id === sort.column);
  rows.sort((a, b) => {
    const x = a.values[col], y = b.values[col];
    if (col === 0) return sort.descending ? y.localeCompare(x) : x.localeCompare(y);
    if (x == null && y == null) return a.key.localeCompare(b.key);
    if (x == null) return 1;
    if (y == null) return -1;
    return sort.descending ? y - x : x - y;
  });
  if (!table.tHead) {
    const head = el("tr");
    for (const c of BOARD_COLUMNS) {
      const th = el("th", { scope: "col", "data-column": c.id, text: c.label });
      th.addEventListener("click", () => {
        const s = sorting[dim];
        if (s.column === c.id) s.descending = !s.descending; else { s.column = c.id; s.descending = c.id !== "key"; }
        render();
      });
      head.append(th);
    }
    table.append(el("thead", {}, head), el("tbody"));
  }
  for (const th of table.tHead.rows[0].cells) {
    if (th.dataset.column === sort.column) th.setAttribute("aria-sort", sort.descending ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
  const body = table.tBodies[0];
  const shown = rows.slice(0, 200);
  while (body.rows.length > shown.length) body.deleteRow(-1);
  shown.forEach((r, i) => {
    let tr = body.rows[i];
    if (!tr) {
      tr = el("tr");
      for (let c = 0; c < BOARD_COLUMNS.length; c++) tr.append(el("td"));
      tr.addEventListener("click", () => { view.dimension = dim; view.key = tr.dataset.key; saveView(); rendered = false; render(); });
      body.append(tr);
    }
    const sameRow = tr.dataset.key === r.key;
    tr.dataset.key = r.key;
    tr.classList.toggle("selected", view.dimension === dim && view.key === r.key);
    BOARD_COLUMNS.forEach((c, j) => {
      const td = tr.cells[j];
      td.dataset.column = c.id;
      if (j === 0) { if (td.textContent !== r.key) td.textContent = r.key; return; }
      if (!sameRow) delete td.dataset.value;  // a different rep moved here: no flash
      setValue(td, format(c.fmt, r.values[j]), r.values[j], null);
    });
  });
  if (!shown.length && !table.tFoot) table.createTFoot().append(el("tr", {}, el("td", { colspan: "6", class: "empty", text: "No data for this period." })));
  if (shown.length && table.tFoot) table.deleteTFoot();
}
function metricOf(c) { return { revenue: "revenue", win_rate: "win_rate", won: "revenue", deals: "new_opportunities", cycle: "sales_cycle_length" }[c.id]; }

function renderTrend() {
  const box = $("trend");
  const m = METRICS.find((x) => x.id === view.trendMetric) || METRICS[0];
  const test = view.trendGrain === "quarter" ? isQuarter : isMonth;
  const points = [...idx().periods].filter(test).sort()
    .map((p) => ({ period: p, payload: get(m.id, view.dimension, view.key, p) }))
    .filter((x) => x.payload && x.payload.value != null);
  box.replaceChildren();
  if (!points.length) { box.append(el("div", { class: "empty", text: "No values of this metric by " + view.trendGrain + "." })); return; }
  const W = 560, H = 220, L = 64, R = 28, T = 12, B = 34;
  const values = points.map((x) => x.payload.value);
  const lo = Math.min(0, ...values), hi = Math.max(...values, lo + 1e-9);
  const x = (i) => L + (points.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (points.length - 1));
  const y = (val) => T + (H - T - B) * (1 - (val - lo) / (hi - lo));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${m.label} by ${view.trendGrain}` });
  for (const t of [lo, (lo + hi) / 2, hi]) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(t), y2: y(t), class: "axis" }));
    const label = svg("text", { x: L - 6, y: y(t) + 3, "text-anchor": "end" });
    label.textContent = format(m.fmt, t);
    chart.append(label);
  }
  chart.append(svg("polyline", { class: "line", points: points.map((p, i) => `${x(i)},${y(p.payload.value)}`).join(" ") }));
  const every = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    const dot = svg("circle", { cx: x(i), cy: y(p.payload.value), r: 3.5, class: "dot", "data-period": p.period, "data-value": p.payload.value });
    const tip = svg("title", {});
    tip.textContent = `${p.period}: ${format(m.fmt, p.payload.value)}`;
    dot.append(tip);
    chart.append(dot);
    if (i % every === 0 || i === points.length - 1) {
      const label = svg("text", { x: x(i), y: H - B + 16, "text-anchor": "middle" });
      label.textContent = p.period;
      chart.append(label);
    }
  });
  box.append(chart);
}

function renderFreshness() {
  const line = $("freshness");
  let text, cls;
  if (!position) {
    text = streamOpen ? "waiting for the first round…" : "connecting…";
    cls = "freshness waiting";
  } else {
    const age = position.round_age_ms < 0 ? Infinity : position.round_age_ms + (Date.now() - position.receivedAt);
    const at = position.last_round_ms > 0 ? new Date(position.last_round_ms).toLocaleTimeString("en-GB", { hour12: false }) : "never";
    const logSeq = int(position.log_seq);
    if (!streamOpen && Date.now() - position.receivedAt > STALE_AFTER_MS) {
      text = `Stale: lost the dashboard server · log_seq ${logSeq} · last round ${at}`;
      cls = "freshness stale";
    } else if (age > STALE_AFTER_MS) {
      text = `Stale: no round from the daemon for ${Math.round(age / 1000)} s · log_seq ${logSeq} · last round ${at}`;
      cls = "freshness stale";
    } else {
      text = `Live · log_seq ${logSeq} · last round ${at}`;
      cls = "freshness live";
    }
  }
  line.className = cls;
  line.dataset.logSeq = position ? String(position.log_seq) : "";
  if (line.textContent !== text) line.textContent = text;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { renderQueued = false; render(); }, 0);
}
function render() {
  renderPickers();
  renderTiles();
  renderFunnel();
  renderBoard("owner");
  renderBoard("team");
  renderTrend();
  renderFreshness();
  rendered = true;
  window.dealstream.renders += 1;
}

// ---------- view state in the URL ----------
function saveView() {
  const params = new URLSearchParams({ period: view.period, dimension: view.dimension, key: view.key, pipeline: view.pipeline, trend: view.trendMetric, grain: view.trendGrain });
  history.replaceState(null, "", "#" + params.toString());
}
function loadView() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("period")) view.period = params.get("period");
  if (params.get("dimension") && DIMENSION_NAMES[params.get("dimension")]) view.dimension = params.get("dimension");
  if (params.has("key")) view.key = params.get("key");
  if (params.get("pipeline")) view.pipeline = params.get("pipeline");
  if (params.get("trend")) view.trendMetric = params.get("trend");
  if (params.get("grain") === "quarter") view.trendGrain = "quarter";
  if (view.dimension === "all") view.key = "*";
}

function wire() {
  const on = (id, f) => $(id).addEventListener("change", (e) => { f(e.target.value); saveView(); rendered = false; render(); });
  on("period", (x) => { view.period = x; });
  on("dimension", (x) => { view.dimension = x; view.key = x === "all" ? "*" : ""; });
  on("key", (x) => { view.key = x; });
  on("pipeline", (x) => { view.pipeline = x; });
  on("trend-metric", (x) => { view.trendMetric = x; });
  on("trend-grain", (x) => { view.trendGrain = x; });
  window.addEventListener("hashchange", () => { loadView(); rendered = false; render(); });
}

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => { streamOpen = true; renderFreshness(); };
  source.onerror = () => { streamOpen = source.readyState === EventSource.OPEN; renderFreshness(); };
  source.addEventListener("reset", () => { series.clear(); index = null; });
  source.addEventListener("series", (e) => {
    for (const item of JSON.parse(e.data)) {
      if (item.p == null || item.p.removed) series.delete(item.t); else series.set(item.t, item.p);
    }
    index = null;
    scheduleRender();
  });
  source.addEventListener("position", (e) => {
    position = JSON.parse(e.data);
    position.receivedAt = Date.now();
    renderFreshness();
  });
}

async function start() {
  loadView();
  wire();
  try {
    const r = await fetch("/config.json", { credentials: "same-origin" });
    if (r.ok) settings = await r.json();
  } catch (_) { /* the page still works, amounts without a currency sign */ }
  render();
  connect();
  setInterval(renderFreshness, 500);
}
document.addEventListener("DOMContentLoaded", start);
