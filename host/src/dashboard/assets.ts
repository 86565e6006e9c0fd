/**
 * The dashboard's static files, kept as string modules so they ship inside host/dist with no copy step
 * and no build tool: plain HTML, CSS and browser JavaScript, nothing fetched from elsewhere (kernels often
 * run without internet access). The script talks only to the JSON API in server.ts and writes every
 * kernel-provided string with textContent.
 */

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CAM-OS kernel</title>
<link rel="stylesheet" href="/dashboard.css">
</head>
<body>
<header>
  <h1>CAM-OS <span id="version" data-testid="version"></span></h1>
  <div id="kernel-info" data-testid="kernel-info"></div>
  <div id="auth" data-testid="auth">
    <span id="auth-state" data-testid="auth-state">not signed in</span>
    <form id="login-form" data-testid="login-form">
      <input id="login-token" data-testid="login-token" type="password" autocomplete="off" placeholder="operator token">
      <button type="submit" data-testid="login-button">Sign in</button>
    </form>
    <button id="logout" data-testid="logout-button" hidden>Sign out</button>
  </div>
</header>
<div id="message" data-testid="message" role="status"></div>
<ul id="warnings" data-testid="warnings"></ul>
<main>
  <section id="components-section">
    <h2>Components</h2>
    <table data-testid="components">
      <thead><tr><th>name</th><th>version</th><th>health</th><th>restarts</th><th>calls</th><th>failed</th><th>instances</th></tr></thead>
      <tbody id="components"></tbody>
    </table>
    <div id="component-detail" data-testid="component-detail" hidden>
      <h3 id="detail-name" data-testid="detail-name"></h3>
      <dl id="detail-fields"></dl>
      <div class="actions">
        <fieldset id="swap-form" data-testid="swap-form">
          <legend>Swap to a new build</legend>
          <label>component (.wasm) <input id="swap-wasm" data-testid="swap-wasm" type="file" accept=".wasm,application/wasm"></label>
          <label>signed manifest (.json) <input id="swap-manifest" data-testid="swap-manifest" type="file" accept=".json,application/json"></label>
          <label><input id="swap-downgrade" type="checkbox"> allow downgrade</label>
          <button id="swap-button" data-testid="swap-button" type="button">Swap</button>
        </fieldset>
        <button id="rollback-button" data-testid="rollback-button" type="button">Roll back</button>
      </div>
    </div>
  </section>
  <section id="rate-section">
    <h2>Syscalls</h2>
    <div class="legend"><span class="rate">calls/s</span> <span class="p50">p50 latency</span> <span class="p99">p99 latency</span></div>
    <canvas id="rate-plot" data-testid="rate-plot" width="720" height="180"></canvas>
    <div id="rate-now" data-testid="rate-now"></div>
    <table data-testid="syscalls">
      <thead><tr><th>syscall</th><th>calls</th><th>errors</th><th>p50 us</th><th>p99 us</th><th>available</th></tr></thead>
      <tbody id="syscalls"></tbody>
    </table>
  </section>
  <section id="decisions-section">
    <h2>Recent decisions</h2>
    <div id="decisions-missing" hidden></div>
    <ol id="decisions" data-testid="decisions"></ol>
    <div id="explanation" data-testid="explanation" hidden>
      <h3 id="explanation-title" data-testid="explanation-title"></h3>
      <div class="levels" id="levels"></div>
      <pre id="explanation-text" data-testid="explanation-text"></pre>
      <h4>Spans of this decision's trace</h4>
      <ul id="explanation-spans" data-testid="explanation-spans"></ul>
    </div>
  </section>
  <section id="traces-section">
    <h2>Recent traces</h2>
    <table data-testid="traces">
      <thead><tr><th>started</th><th>root span</th><th>spans</th><th>ms</th><th>errors</th></tr></thead>
      <tbody id="traces"></tbody>
    </table>
    <div id="trace-detail" data-testid="trace-detail" hidden>
      <h3 id="trace-title" data-testid="trace-title"></h3>
      <ul id="trace-tree" class="tree" data-testid="trace-tree"></ul>
    </div>
  </section>
  <section id="swaps-section">
    <h2>Swaps and rollbacks</h2>
    <table data-testid="swaps">
      <thead><tr><th>at</th><th>component</th><th>kind</th><th>from</th><th>to</th><th>result</th><th>paused ms</th></tr></thead>
      <tbody id="swaps"></tbody>
    </table>
  </section>
</main>
<footer><a href="/metrics">/metrics</a> · <a href="/traces">/traces</a> · <a href="/healthz">/healthz</a></footer>
<script src="/dashboard.js"></script>
</body>
</html>
`;

const CSS = `
:root { --bg: #fafafa; --fg: #1d2330; --muted: #6b7280; --line: #d9dce3; --ok: #1f7a3a; --warn: #a16207; --bad: #b91c1c; --accent: #2550c0; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; gap: 24px; align-items: center; padding: 10px 20px; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
h1 { font-size: 18px; margin: 0; }
h1 span { color: var(--muted); font-weight: normal; }
h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 12px 0 6px; }
#kernel-info { color: var(--muted); flex: 1; }
#auth { display: flex; gap: 8px; align-items: center; }
#auth form { display: flex; gap: 6px; }
main { display: grid; grid-template-columns: minmax(420px, 1fr) minmax(420px, 1fr); gap: 16px; padding: 16px 20px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
tbody tr.clickable { cursor: pointer; }
tbody tr.clickable:hover, tbody tr.selected { background: #eef2fb; }
.health-healthy { color: var(--ok); font-weight: 600; }
.health-degraded, .health-starting { color: var(--warn); font-weight: 600; }
.health-failed, .health-stopped { color: var(--bad); font-weight: 600; }
#message { padding: 0 20px; min-height: 22px; }
#message.error { color: var(--bad); }
#message.ok { color: var(--ok); }
#warnings { margin: 0; padding: 0 20px 0 40px; color: var(--warn); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; word-break: break-all; }
.actions { display: flex; gap: 12px; align-items: flex-start; margin-top: 10px; flex-wrap: wrap; }
fieldset { border: 1px solid var(--line); border-radius: 4px; display: flex; flex-direction: column; gap: 4px; }
button { font: inherit; padding: 3px 10px; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; }
button:disabled { opacity: .5; cursor: not-allowed; }
button.secondary { background: #fff; color: var(--accent); }
canvas { width: 100%; max-width: 720px; border: 1px solid var(--line); background: #fff; }
.legend span { margin-right: 12px; }
.legend .rate { color: var(--accent); } .legend .p50 { color: var(--ok); } .legend .p99 { color: var(--bad); }
#decisions { padding-left: 0; list-style: none; margin: 0; max-height: 320px; overflow: auto; }
#decisions li { padding: 4px 6px; border-bottom: 1px solid var(--line); cursor: pointer; }
#decisions li:hover, #decisions li.selected { background: #eef2fb; }
#decisions .kind { display: inline-block; min-width: 90px; color: var(--muted); }
pre { white-space: pre-wrap; background: #f4f5f8; padding: 8px; border-radius: 4px; }
.levels button { margin-right: 4px; }
.levels button.active { background: #fff; color: var(--accent); }
.tree { list-style: none; padding-left: 0; font-family: ui-monospace, monospace; font-size: 12px; }
.tree li { white-space: pre; }
.tree .error { color: var(--bad); }
.tree .agent { color: var(--accent); }
footer { padding: 8px 20px 20px; color: var(--muted); }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
`;

const JS = `'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { selected: null, decision: null, level: 'detailed', authed: false, points: [] };

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells) {
    const tr = document.createElement('tr');
    for (const c of cells) tr.appendChild(c instanceof Node ? (c.tagName === 'TD' ? c : wrap(c)) : el('td', c));
    return tr;
  }
  function wrap(node) { const td = document.createElement('td'); td.appendChild(node); return td; }
  function show(msg, kind) { const m = $('message'); m.textContent = msg; m.className = kind || ''; }

  async function api(path, init) {
    const res = await fetch(path, Object.assign({ credentials: 'same-origin' }, init || {}));
    let body = null;
    try { body = await res.json(); } catch { body = null; }
    if (!res.ok) {
      const err = new Error((body && body.error) || res.status + ' ' + res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }
  function post(path, body) {
    return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}) });
  }

  // --- session ---
  async function refreshSession() {
    const s = await api('/api/session');
    state.authed = s.authenticated;
    $('auth-state').textContent = s.authenticated ? 'signed in as ' + s.operator : 'not signed in' + (s.token_file ? ' (token: ' + s.token_file + ')' : '');
    $('login-form').hidden = s.authenticated;
    $('logout').hidden = !s.authenticated;
    $('swap-button').disabled = !s.authenticated;
    $('rollback-button').disabled = !s.authenticated;
  }
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post('/api/login', { token: $('login-token').value });
      $('login-token').value = '';
      show('signed in', 'ok');
      await refreshAll();
      startLive();
      return;
    } catch (e) { show('sign-in failed: ' + e.message, 'error'); }
    await refreshSession();
  });
  $('logout').addEventListener('click', async () => { await post('/api/logout'); show('signed out'); await refreshSession(); });

  // --- overview: components, syscalls, swaps ---
  function fmtTime(ms) { return new Date(ms).toLocaleTimeString(); }
  async function refreshOverview() {
    const o = await api('/api/overview');
    $('version').textContent = o.version;
    $('kernel-info').textContent = o.auth_mode + ' mode · up ' + o.uptime_s + ' s · rss ' + (o.rss_bytes / 1048576).toFixed(1) + ' MiB · ' + o.components.length + ' components';
    const w = $('warnings'); w.replaceChildren(...o.warnings.map((x) => el('li', x)));
    const tb = $('components');
    tb.replaceChildren();
    for (const c of o.components) {
      const tr = row([c.name, c.version || '-', el('span', c.health, 'health-' + c.health), c.restarts, c.calls, c.failed_calls, c.instances.ready + '/' + c.instances.total]);
      tr.className = 'clickable' + (state.selected === c.name ? ' selected' : '');
      tr.dataset.component = c.name;
      tr.dataset.testid = 'component-row';
      tr.setAttribute('data-testid', 'component-row-' + c.name);
      tr.addEventListener('click', () => { state.selected = c.name; renderDetail(c); refreshOverview(); });
      tb.appendChild(tr);
      if (state.selected === c.name) renderDetail(c);
    }
    const sb = $('syscalls');
    sb.replaceChildren();
    for (const s of o.syscalls.filter((s) => s.calls > 0 || !s.available)) {
      const errs = Object.values(s.errors).reduce((a, b) => a + b, 0);
      sb.appendChild(row([s.name, s.calls, errs, Math.round(s.p50Us), Math.round(s.p99Us), s.available ? 'yes' : 'no: ' + s.missing]));
    }
    const wb = $('swaps');
    wb.replaceChildren();
    for (const r of o.swaps) {
      const tr = row([new Date(r.at).toLocaleTimeString(), r.name, r.kind, r.from_version || r.from_digest.slice(0, 19), r.to_version || r.to_digest.slice(0, 19), r.result + (r.reason ? ': ' + r.reason : ''), r.paused_ms]);
      tr.setAttribute('data-testid', 'swap-row');
      wb.appendChild(tr);
    }
    return o;
  }

  function renderDetail(c) {
    $('component-detail').hidden = false;
    $('detail-name').textContent = c.name + (c.version ? '@' + c.version : '');
    const dl = $('detail-fields');
    dl.replaceChildren();
    const add = (k, v) => { dl.appendChild(el('dt', k)); const dd = el('dd', v); dd.setAttribute('data-testid', 'detail-' + k.replace(/ /g, '-')); dl.appendChild(dd); };
    add('health', c.health);
    add('version', c.version || '-');
    add('digest', c.digest);
    add('abi', c.abi || '-');
    add('instances', c.instances.total + ' (' + c.instances.ready + ' ready, ' + c.instances.busy + ' busy, ' + c.instances.recovering + ' recovering)');
    add('restarts', c.restarts);
    add('memory cap', (c.memory_max_bytes / 1048576).toFixed(0) + ' MiB per memory');
    add('deadline', c.deadline_ms + ' ms');
    add('exports', c.exports.join(', ') || '-');
    add('imports', c.imports.join(', ') || '-');
    add('loaded', c.loaded_at);
    if (c.last_error) add('last error', c.last_error.kind + ' at ' + c.last_error.at + ': ' + c.last_error.message);
  }

  function readFile(input, asText) {
    const f = input.files && input.files[0];
    if (!f) return Promise.reject(new Error('choose a file'));
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onerror = () => reject(r.error);
      r.onload = () => resolve(r.result);
      if (asText) r.readAsText(f); else r.readAsDataURL(f);
    });
  }
  $('swap-button').addEventListener('click', async () => {
    const name = state.selected;
    if (!name) return;
    try {
      const dataUrl = await readFile($('swap-wasm'), false);
      const manifest = await readFile($('swap-manifest'), true);
      show('swapping ' + name + '…');
      const out = await post('/api/components/' + encodeURIComponent(name) + '/swap', {
        component_base64: String(dataUrl).slice(String(dataUrl).indexOf(',') + 1),
        manifest_json: manifest,
        allow_downgrade: $('swap-downgrade').checked,
      });
      show(name + ': ' + out.record.kind + ' ' + (out.record.from_version || '?') + ' -> ' + (out.record.to_version || '?') + ' ' + out.record.result + ' (paused ' + out.record.paused_ms + ' ms)', 'ok');
    } catch (e) { show('swap failed: ' + e.message, 'error'); }
    await refreshAll();
  });
  $('rollback-button').addEventListener('click', async () => {
    const name = state.selected;
    if (!name) return;
    try {
      const out = await post('/api/components/' + encodeURIComponent(name) + '/rollback');
      show(name + ': rollback ' + (out.record.from_version || '?') + ' -> ' + (out.record.to_version || '?') + ' ' + out.record.result, 'ok');
    } catch (e) { show('rollback failed: ' + e.message, 'error'); }
    await refreshAll();
  });

  // --- decisions ---
  async function refreshDecisions() {
    let d;
    try { d = await api('/api/decisions?limit=100'); }
    catch (e) { $('decisions-missing').hidden = false; $('decisions-missing').textContent = e.message; return; }
    $('decisions-missing').hidden = true;
    const ol = $('decisions');
    ol.replaceChildren();
    for (const e of d.decisions) {
      const li = el('li');
      li.setAttribute('data-testid', 'decision');
      li.dataset.seq = e.seq;
      li.dataset.kind = e.kind;
      if (state.decision === e.seq) li.className = 'selected';
      li.appendChild(el('span', '#' + e.seq + ' ', 'seq'));
      li.appendChild(el('span', e.kind, 'kind'));
      li.appendChild(el('span', ' ' + fmtTime(e.ts) + ' ' + e.brief));
      li.addEventListener('click', () => openDecision(e.seq));
      ol.appendChild(li);
    }
  }
  async function openDecision(seq) {
    state.decision = seq;
    const d = await api('/api/decisions/' + seq + '?level=' + state.level);
    $('explanation').hidden = false;
    $('explanation-title').textContent = 'Decision #' + d.entry.seq + ' — ' + d.entry.kind + ': ' + d.entry.action + ' → ' + d.entry.outcome;
    $('explanation-text').textContent = d.explanation;
    const levels = $('levels');
    levels.replaceChildren();
    for (const l of ['brief', 'detailed', 'technical', 'audit']) {
      const b = el('button', l, l === state.level ? 'active' : 'secondary');
      b.type = 'button';
      b.setAttribute('data-testid', 'level-' + l);
      b.addEventListener('click', () => { state.level = l; openDecision(seq); });
      levels.appendChild(b);
    }
    const ul = $('explanation-spans');
    ul.replaceChildren(...(d.spans.length ? d.spans.map((s) => el('li', s.name + ' · ' + s.durationMs.toFixed(3) + ' ms · ' + s.status + (s.parentSpanId ? ' · parent ' + s.parentSpanId : ''))) : [el('li', d.entry.traceId ? 'no spans kept for trace ' + d.entry.traceId : 'this decision has no trace id')]));
    for (const li of $('decisions').children) li.classList.toggle('selected', Number(li.dataset.seq) === seq);
  }

  // --- traces ---
  async function refreshTraces() {
    const t = await api('/api/traces?limit=30');
    const tb = $('traces');
    tb.replaceChildren();
    for (const tr of t.traces) {
      const row_ = row([fmtTime(tr.startMs), tr.root + (tr.sources.includes('agent') ? ' (agent)' : ''), tr.spans, tr.durationMs.toFixed(2), tr.errors]);
      row_.className = 'clickable';
      row_.setAttribute('data-testid', 'trace-row');
      row_.addEventListener('click', () => openTrace(tr.traceId));
      tb.appendChild(row_);
    }
  }
  async function openTrace(traceId) {
    const t = await api('/traces?trace_id=' + traceId);
    $('trace-detail').hidden = false;
    $('trace-title').textContent = 'trace ' + traceId + ' · ' + t.spans.length + ' spans';
    const ids = new Set(t.spans.map((s) => s.spanId));
    const children = new Map();
    const roots = [];
    for (const s of t.spans) {
      if (s.parentSpanId && ids.has(s.parentSpanId)) {
        if (!children.has(s.parentSpanId)) children.set(s.parentSpanId, []);
        children.get(s.parentSpanId).push(s);
      } else roots.push(s);
    }
    const ul = $('trace-tree');
    ul.replaceChildren();
    const walk = (s, depth) => {
      const li = el('li', '  '.repeat(depth) + (depth ? '└ ' : '') + s.name + '  ' + s.durationMs.toFixed(3) + ' ms' + (s.status === 'error' ? '  ' + (s.error || 'error') : ''), s.status === 'error' ? 'error' : s.source === 'agent' ? 'agent' : '');
      ul.appendChild(li);
      for (const c of (children.get(s.spanId) || []).sort((a, b) => a.startMs - b.startMs)) walk(c, depth + 1);
    };
    for (const r of roots.sort((a, b) => a.startMs - b.startMs)) walk(r, 0);
  }

  // --- live rate plot ---
  function draw() {
    const c = $('rate-plot');
    const g = c.getContext('2d');
    const W = c.width, H = c.height, pad = 28;
    g.clearRect(0, 0, W, H);
    g.strokeStyle = '#d9dce3'; g.strokeRect(pad, 4, W - pad - 4, H - pad);
    const pts = state.points.slice(-120);
    if (pts.length < 2) { g.fillStyle = '#6b7280'; g.fillText('waiting for data…', pad + 8, 24); return; }
    const maxRate = Math.max(1, ...pts.map((p) => p.rate));
    const maxLat = Math.max(1, ...pts.map((p) => p.p99Us));
    const x = (i) => pad + (i / (pts.length - 1)) * (W - pad - 8);
    const line = (color, f, max) => {
      g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
      pts.forEach((p, i) => { const y = 4 + (H - pad) * (1 - f(p) / max); if (i) g.lineTo(x(i), y); else g.moveTo(x(i), y); });
      g.stroke();
    };
    g.fillStyle = 'rgba(37, 80, 192, 0.18)';
    g.beginPath();
    g.moveTo(x(0), H - pad + 4);
    pts.forEach((p, i) => g.lineTo(x(i), 4 + (H - pad) * (1 - p.rate / maxRate)));
    g.lineTo(x(pts.length - 1), H - pad + 4);
    g.closePath();
    g.fill();
    line('#2550c0', (p) => p.rate, maxRate);
    line('#1f7a3a', (p) => p.p50Us, maxLat);
    line('#b91c1c', (p) => p.p99Us, maxLat);
    g.fillStyle = '#6b7280';
    g.fillText(maxRate.toFixed(0) + '/s', 2, 12);
    g.fillText(Math.round(maxLat) + ' us', W - 70, 12);
    const last = pts[pts.length - 1];
    $('rate-now').textContent = 'now: ' + last.rate.toFixed(1) + ' calls/s · p50 ' + Math.round(last.p50Us) + ' us · p99 ' + Math.round(last.p99Us) + ' us · ' + last.errors + ' errors';
  }
  async function loadRates() {
    const r = await api('/api/rates?limit=120');
    state.points = r.points;
    draw();
  }

  async function refreshAll() {
    try { await Promise.all([refreshSession(), refreshOverview(), refreshDecisions(), refreshTraces()]); }
    catch (e) { show('refresh failed: ' + e.message, 'error'); }
  }

  let lastDecision = null;
  function live() {
    const es = new EventSource('/api/events');
    es.addEventListener('tick', (ev) => {
      const t = JSON.parse(ev.data);
      if (t.point && (!state.points.length || state.points[state.points.length - 1].t !== t.point.t)) {
        state.points.push(t.point);
        if (state.points.length > 300) state.points.shift();
        draw();
      }
      if (t.decisions !== lastDecision) { lastDecision = t.decisions; refreshDecisions(); }
    });
  }

  // Live updates start once the data is readable (in authenticated mode: after sign-in).
  let liveStarted = false;
  function startLive() {
    if (liveStarted) return;
    liveStarted = true;
    loadRates().then(live, () => { liveStarted = false; });
  }
  refreshAll().then(startLive);
  setInterval(() => { refreshOverview().catch(() => {}); refreshTraces().catch(() => {}); }, 3000);
})();
`;

export const ASSETS: Record<string, { body: string; type: string }> = {
  '/index.html': { body: HTML, type: 'text/html; charset=utf-8' },
  '/dashboard.css': { body: CSS, type: 'text/css; charset=utf-8' },
  '/dashboard.js': { body: JS, type: 'text/javascript; charset=utf-8' },
};
