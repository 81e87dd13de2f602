// The relay's status page: polls /status.json every 2 s, shows the numbers
// and draws the last 10 minutes as SVG line charts. No library and no
// network access beyond this relay's admin port (the page is served with
// `Content-Security-Policy: default-src 'self'`).
'use strict';

const POLL_MS = 2000;
const WINDOW_MS = 10 * 60 * 1000;
// One point a poll over the window, and a little slack for slow polls.
const MAX_POINTS = WINDOW_MS / POLL_MS + 10;
const SVG_NS = 'http://www.w3.org/2000/svg';

/** Points `{ t, peers, connections, reservations, circuits, wsCircuits, libp2pRate, wsRate, turnRate }`, t in the relay's uptime ms. */
let history = [];
/** Refusal counts by `kind/reason` at each point, for the "last 10 min" column. */
let refusalHistory = [];
let previous = null;

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const setText = (id, text) => { const el = $(id); if (el && el.textContent !== text) el.textContent = text; };
const fmtInt = (n) => Math.round(n).toLocaleString('en-US');

function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function fmtDuration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m ${s}s` : `${m}m ${s}s`;
}

/** Bytes per second of a counter between two snapshots, by the relay's clock. */
function rate(prev, now, pick) {
  const dt = now.uptime_ms - prev.uptime_ms;
  const db = pick(now) - pick(prev);
  return dt > 0 && db >= 0 ? (db * 1000) / dt : 0;
}

function record(s) {
  // A relay that restarted (uptime went back) starts a new history: its
  // counters started again from 0.
  if (previous && s.uptime_ms < previous.uptime_ms) { history = []; refusalHistory = []; previous = null; }
  const point = {
    t: s.uptime_ms,
    peers: s.peers.signaling.active,
    connections: s.peers.libp2p_connections_total,
    reservations: s.reservations.active,
    circuits: s.circuits.libp2p.active,
    wsCircuits: s.circuits.websocket.active,
    libp2pRate: previous ? rate(previous, s, (x) => x.bytes.libp2p_relayed) : 0,
    wsRate: previous ? rate(previous, s, (x) => x.bytes.websocket_forwarded) : 0,
    turnRate: previous ? rate(previous, s, (x) => x.bytes.turn_relayed) : 0,
  };
  history.push(point);
  refusalHistory.push({ t: s.uptime_ms, counts: new Map(s.refusals.map((r) => [`${r.kind}/${r.reason}`, r.count])) });
  const oldest = s.uptime_ms - WINDOW_MS;
  while (history.length > MAX_POINTS || (history.length > 1 && history[0].t < oldest)) history.shift();
  while (refusalHistory.length > MAX_POINTS || (refusalHistory.length > 1 && refusalHistory[0].t < oldest)) refusalHistory.shift();
  previous = s;
  return point;
}

function renderNumbers(s, point) {
  const health = $('health');
  health.textContent = s.status;
  health.className = `badge ${s.status === 'ok' ? 'ok' : 'bad'}`;
  setText('version', s.version);
  setText('uptime', fmtDuration(s.uptime_ms));
  setText('peer-id', s.peer_id);
  setText('signaling-peers', fmtInt(s.peers.signaling.active));
  setText('signaling-peers-max', `of ${fmtInt(s.peers.signaling.max)} · ${fmtInt(s.peers.public_connections)} public sockets`);
  setText('connections', fmtInt(s.peers.libp2p_connections_total));
  const transports = Object.entries(s.peers.libp2p_connections).filter(([, n]) => n > 0);
  setText('connections-by-transport', transports.length ? transports.map(([k, n]) => `${k} ${n}`).join(' · ') : 'none');
  setText('reservations', fmtInt(s.reservations.active));
  setText('reservations-max', `of ${fmtInt(s.reservations.max)} held`);
  setText('circuits', fmtInt(s.circuits.libp2p.active));
  setText('circuits-max', `of ${fmtInt(s.circuits.libp2p.max)} open`);
  setText('ws-circuits', fmtInt(s.circuits.websocket.active));
  setText('ws-circuits-max', `of ${fmtInt(s.circuits.websocket.max)} open`);
  setText('bandwidth', `${fmtBytes(point.libp2pRate + point.wsRate + point.turnRate)}/s`);
  const b = s.bytes;
  setText('bytes-total', fmtBytes(b.libp2p_relayed + b.websocket_forwarded + b.turn_relayed));
  setText('bytes-by-path', `libp2p ${fmtBytes(b.libp2p_relayed)} · ws ${fmtBytes(b.websocket_forwarded)} · turn ${fmtBytes(b.turn_relayed)}`);
  setText('refusals-total', fmtInt(s.refusals.reduce((sum, r) => sum + r.count, 0)));
  // Raw values for scripts and tests, which should not parse formatted text.
  const root = document.documentElement.dataset;
  root.bytesTotal = String(b.libp2p_relayed + b.websocket_forwarded + b.turn_relayed);
  root.signalingPeers = String(s.peers.signaling.active);
  root.wsCircuits = String(s.circuits.websocket.active);
  root.points = String(history.length);
  root.maxRate = String(Math.max(...history.map((p) => p.libp2pRate + p.wsRate + p.turnRate)));
}

function renderRefusals(s) {
  const first = refusalHistory[0]?.counts ?? new Map();
  const tbody = $('refusals').tBodies[0];
  const rows = s.refusals.map((r) => {
    const key = `${r.kind}/${r.reason}`;
    const recent = r.count - (first.get(key) ?? 0);
    const tr = document.createElement('tr');
    if (recent > 0) tr.className = 'hot';
    for (const [text, cls] of [[r.kind, ''], [r.reason, 'mono'], [fmtInt(r.count), 'num'], [fmtInt(recent), 'num']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = 4;
    td.textContent = 'none';
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A "nice" ceiling (1, 2, 5 × 10^n) at or above `v`, so grid labels read well. */
function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v) ?? 10 * p;
}

/**
 * Draws `series` ([{ label, pick }]) of `history` into `svg`: x is the last 10
 * minutes by the relay's clock, y from 0 to a nice ceiling of the largest value.
 */
function drawChart(svg, series, format) {
  const W = 600, H = 170, L = 64, R = 8, T = 22, B = 20;
  const now = history.length ? history[history.length - 1].t : 0;
  const x = (t) => L + ((t - (now - WINDOW_MS)) / WINDOW_MS) * (W - L - R);
  const top = niceMax(Math.max(0, ...history.flatMap((p) => series.map((s) => s.pick(p)))));
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const nodes = [];
  for (const f of [0, 0.5, 1]) {
    nodes.push(el('line', { class: 'grid', x1: L, x2: W - R, y1: y(top * f), y2: y(top * f) }));
    nodes.push(el('text', { class: 'axis', x: L - 6, y: y(top * f) + 4, 'text-anchor': 'end' }, format(top * f)));
  }
  nodes.push(el('text', { class: 'axis', x: L, y: H - 4 }, '-10 min'));
  nodes.push(el('text', { class: 'axis', x: W - R, y: H - 4, 'text-anchor': 'end' }, 'now'));
  series.forEach((s, i) => {
    const points = history.map((p) => `${x(p.t).toFixed(1)},${y(s.pick(p)).toFixed(1)}`).join(' ');
    nodes.push(el('polyline', { class: `s${i}`, points, 'data-series': s.label }));
    const last = history.length ? s.pick(history[history.length - 1]) : 0;
    // The newest point as a dot: with a short history the line is only a
    // few pixels at the right edge, and a dot shows where "now" is.
    if (history.length) nodes.push(el('circle', { class: `s${i}`, cx: x(now), cy: y(last), r: 3 }));
    nodes.push(el('text', { class: `s${i}`, x: L + i * 170, y: 14 }, `■ ${s.label}: ${format(last)}`));
  });
  svg.replaceChildren(...nodes);
  svg.dataset.points = String(history.length);
}

function renderCharts() {
  // A ceiling of 1 puts 0.5 on the middle grid line: show it as such, not rounded to 1.
  const count = (v) => (Number.isInteger(v) ? fmtInt(v) : v.toFixed(1));
  const perSecond = (v) => `${fmtBytes(v)}/s`;
  drawChart($('chart-peers'), [
    { label: 'signaling peers', pick: (p) => p.peers },
    { label: 'libp2p connections', pick: (p) => p.connections },
  ], count);
  drawChart($('chart-circuits'), [
    { label: 'reservations', pick: (p) => p.reservations },
    { label: 'libp2p circuits', pick: (p) => p.circuits },
    { label: 'ws circuits', pick: (p) => p.wsCircuits },
  ], count);
  drawChart($('chart-bandwidth'), [
    { label: 'libp2p', pick: (p) => p.libp2pRate },
    { label: 'websocket', pick: (p) => p.wsRate },
    { label: 'turn', pick: (p) => p.turnRate },
  ], perSecond);
}

async function poll() {
  const error = $('error');
  try {
    const response = await fetch('/status.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const snapshot = await response.json();
    const point = record(snapshot);
    renderNumbers(snapshot, point);
    renderRefusals(snapshot);
    renderCharts();
    error.hidden = true;
  } catch (e) {
    // Keep the last numbers and the history: the relay may be restarting.
    error.textContent = `Cannot read /status.json: ${e.message}`;
    error.hidden = false;
    const health = $('health');
    health.textContent = 'unreachable';
    health.className = 'badge bad';
  } finally {
    // Polls never overlap: the next starts 2 s after this one ended.
    setTimeout(poll, POLL_MS);
  }
}

poll();
