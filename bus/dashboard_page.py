"""The dashboard's one page and its login form: static HTML with inline CSS and JavaScript, no external URL.

The script opens ``/events`` (server-sent events; the browser reconnects by itself), renders one card per
bed from each JSON snapshot with DOM text nodes only (no HTML from data), and ticks the "updated ... ago"
and event timers every second between snapshots. A bed without an open event shows ``span.quiet`` (streaming /
scored, no event) and no label, p(TLE) or sparkline; with one, ``span.label``, ``span.p`` and ``svg.spark``.
Test hooks: ``body[data-version]`` is the last snapshot's
version, each card is ``section.bed[data-bed=NAME]`` with ``data-last-seq`` (last window's last frame).
"""

PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>semiostream: beds</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#10151b;color:#e8edf2}
header{display:flex;gap:18px;align-items:baseline;padding:10px 18px;background:#1a222c;flex-wrap:wrap}
header h1{font-size:1.3em;margin:0}#conn{font-weight:700}.ok{color:#6fdc8c}.bad{color:#ff7b72}
.muted{color:#9aa7b4;font-size:.9em}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px;padding:14px 18px}
.bed{background:#1a222c;border-radius:10px;padding:12px 14px;border:2px solid #273241}
.bed.stale{border-color:#b58900}.bed.open{border-color:#ff7b72}
.top{display:flex;justify-content:space-between;align-items:baseline}
.name{font-size:1.35em;font-weight:700}.p{font-size:2.1em;font-weight:800}.quiet{color:#9aa7b4}
.label{font-weight:700;padding:1px 8px;border-radius:5px;margin-left:6px}
.label.TLE{background:#ffb199;color:#3b1000}.label.FLE{background:#9cc7ff;color:#001a3b}
svg.spark{width:100%;height:54px;background:#10151b;border-radius:5px;margin:6px 0}
.row{display:flex;gap:14px;flex-wrap:wrap;font-size:.95em}.event{margin-top:6px;font-weight:700;color:#ff7b72}
ul.closed{margin:6px 0 0;padding-left:18px;font-size:.92em}a{color:#8cc8ff}
footer{padding:6px 18px 16px}.disclaimer{color:#f0c674}
</style></head>
<body data-version="0">
<header><h1>semiostream &mdash; live beds</h1><span class="muted">a class only during an event</span>
<span id="conn" class="bad">connecting&hellip;</span><span class="muted" id="bundle"></span>
<span class="muted" id="dropped"></span><span class="bad" id="errors"></span></header>
<main id="grid"></main>
<footer><p class="disclaimer">A research second opinion computed from video, not a diagnosis.</p></footer>
<script>
"use strict";
let snap = null, offset = 0;
const grid = document.getElementById("grid");
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; }
function ago(s) { if (s === null || s === undefined) return "never"; s = Math.max(0, s);
  if (s < 90) return s.toFixed(0) + " s"; if (s < 5400) return (s / 60).toFixed(0) + " min";
  return (s / 3600).toFixed(1) + " h"; }
function spark(values) {
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 300 54");
  svg.setAttribute("preserveAspectRatio", "none");
  const th = document.createElementNS(ns, "line");
  th.setAttribute("x1", 0); th.setAttribute("x2", 300); th.setAttribute("y1", 27); th.setAttribute("y2", 27);
  th.setAttribute("stroke", "#5c6773"); th.setAttribute("stroke-dasharray", "4 3"); svg.appendChild(th);
  if (values.length) {
    const n = Math.max(values.length - 1, 1);
    const pts = values.map((p, i) => (i * 300 / n).toFixed(1) + "," + (52 - p * 50).toFixed(1)).join(" ");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts); line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#8cc8ff"); line.setAttribute("stroke-width", "2"); svg.appendChild(line);
  }
  svg.dataset.points = String(values.length);
  return svg;
}
function card(name, b, now) {
  const s = el("section", "bed"); s.dataset.bed = name;
  s.dataset.lastSeq = b.last_seq === null ? "" : String(b.last_seq);
  if (b.stale) s.classList.add("stale"); if (b.event) s.classList.add("open");
  const top = el("div", "top"); const left = el("div");
  left.appendChild(el("span", "name", name)); top.appendChild(left); s.appendChild(top);
  if (b.event) {  // a class only inside an open event (the model learnt seizures only)
    if (b.label) left.appendChild(el("span", "label " + b.label, b.label));
    top.appendChild(el("span", "p", b.p_tle === null ? "–" : b.p_tle.toFixed(3)));
    s.appendChild(spark(b.spark));
  } else top.appendChild(el("span", "quiet", b.windows ? "scored, no event" : "streaming"));
  const row = el("div", "row");
  const upd = el("span", "updated"); upd.dataset.t = b.updated === null ? "" : String(b.updated);
  row.appendChild(upd);
  row.appendChild(el("span", "windows", b.windows + " windows"));
  if (b.stale) row.appendChild(el("span", "stale bad", "STALE (no frames for " + ago(b.age_s) + ")"));
  row.appendChild(el("span", "gaps", "gaps " + (b.gaps === null || b.gaps === undefined ? "–" : b.gaps)));
  if (b.latency_ms !== null) row.appendChild(el("span", "latency", "latency " + b.latency_ms.toFixed(0) + " ms"));
  s.appendChild(row);
  if (b.event) { const ev = el("div", "event"); ev.dataset.since = b.event_since === null ? "" : String(b.event_since);
    ev.dataset.id = b.event; s.appendChild(ev); }
  if (b.closed.length) { const ul = el("ul", "closed");
    for (const e of b.closed) { const li = el("li");
      li.appendChild(el("span", "", e.event_id + ": " + (e.label || "no decision") + " p(TLE) " +
        (e.p_tle === null ? "–" : e.p_tle.toFixed(2)) + ", " + e.windows + " windows "));
      if (e.report_url) { const a = el("a", "report", "report"); a.href = e.report_url; a.target = "_blank";
        a.rel = "noopener"; li.appendChild(a); } else li.appendChild(el("span", "muted", "(no report yet)"));
      ul.appendChild(li); }
    s.appendChild(ul); }
  return s;
}
function tick() {
  if (!snap) return; const now = Date.now() / 1000 + offset;
  for (const u of grid.querySelectorAll(".updated"))
    u.textContent = u.dataset.t ? "updated " + ago(now - Number(u.dataset.t)) + " ago" : "no result yet";
  for (const e of grid.querySelectorAll(".event"))
    e.textContent = "EVENT OPEN " + e.dataset.id +
      (e.dataset.since ? " for " + ago(now - Number(e.dataset.since)) : "");
}
function render(s) {
  snap = s; offset = s.now - Date.now() / 1000;
  const cards = Object.entries(s.beds).map(([name, b]) => card(name, b, s.now));
  grid.replaceChildren(...cards);
  document.getElementById("bundle").textContent = s.bundle_id ? "bundle " + s.bundle_id : "";
  const d = Object.entries(s.dropped).map(([k, v]) => k + "=" + v).join(", ");
  document.getElementById("dropped").textContent = d ? "dropped: " + d : "";
  document.getElementById("errors").textContent = [s.results_error, s.status_error].filter(Boolean).join("; ");
  document.body.dataset.version = String(s.version);
  tick();
}
const conn = document.getElementById("conn");
const source = new EventSource("events");
source.onopen = () => { conn.textContent = "live"; conn.className = "ok"; };
source.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "bad"; };
source.onmessage = (m) => render(JSON.parse(m.data));
setInterval(tick, 1000);
</script></body></html>
"""

LOGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>semiostream dashboard: sign in</title>
<style>body{font-family:system-ui,sans-serif;background:#10151b;color:#e8edf2;display:grid;place-items:center;
height:90vh}form{background:#1a222c;padding:24px;border-radius:10px}input{font-size:1.1em;margin:6px 0}</style>
</head><body><form method="post" action="/login"><p>Dashboard token</p>
<input type="password" name="token" autocomplete="current-password" autofocus required>
<input type="submit" value="Open"></form></body></html>
"""
