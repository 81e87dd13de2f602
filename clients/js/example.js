// Example page for darkswap-relay-client.js.
//
// URL parameters:
//   signaling=ws://host:9001/signaling  signaling endpoint (default: this page's host, port 9001)
//   policy=all|relay                     relay: iceTransportPolicy 'relay' without TURN server,
//                                        so WebRTC cannot connect and every connection is relayed
//   iceTimeout=ms                        WebRTC attempt timeout before falling back (default 5000)
//   key=name                             IndexedDB key of the identity (default 'darkswap-identity';
//                                        empty = ephemeral identity)
//   auth=none|auto                       auto: earn a token from the relay's token service (needed on
//                                        a relay whose anonymous role may not register; default none)
//   relayIce=1                           use the relay's own STUN/TURN servers (relayIceServers); with
//                                        policy=relay, WebRTC then goes through the relay's TURN
import { WebRtcConnectionManager } from './darkswap-relay-client.js';

const params = new URLSearchParams(location.search);
const signalingUrl = params.get('signaling') ?? `ws://${location.hostname || '127.0.0.1'}:9001/signaling`;
const relayOnly = params.get('policy') === 'relay';
const iceTimeoutMs = Number(params.get('iceTimeout')) || 5000;
const storageKey = params.has('key') ? (params.get('key') || null) : 'darkswap-identity';
const auth = params.get('auth') === 'auto' ? 'auto' : 'none';

/** @type {RTCConfiguration} */
const rtcConfig = relayOnly ? { iceServers: [], iceTransportPolicy: 'relay' } : { iceServers: [] };
const relayIceServers = params.get('relayIce') === '1';
const manager = new WebRtcConnectionManager({ signalingUrl, rtcConfig, iceTimeoutMs, storageKey, auth, relayIceServers });
/** Every lifecycle state the manager went through, in order (`state` events). @type {string[]} */
const darkswapStates = [manager.state];
manager.addEventListener('state', (event) => {
  darkswapStates.push(/** @type {CustomEvent} */ (event).detail.state);
  byTestId('connection-state').textContent = manager.state;
});
// For tests and the console.
Object.assign(window, { darkswap: manager, darkswapStates });

/** @param {string} testId @returns {HTMLElement} */
const byTestId = (testId) => /** @type {HTMLElement} */ (document.querySelector(`[data-testid="${testId}"]`));
const myPeerId = byTestId('my-peer-id');
const signalingState = byTestId('signaling-state');
const peerList = byTestId('peer-list');
const noPeers = /** @type {HTMLElement} */ (document.getElementById('no-peers'));
const target = /** @type {HTMLSelectElement} */ (byTestId('chat-target'));
const input = /** @type {HTMLInputElement} */ (byTestId('chat-input'));
const chatLog = byTestId('chat-log');
const eventLog = byTestId('event-log');
const tokenInfo = byTestId('token');
/** @type {HTMLElement} */ (document.getElementById('server-url')).textContent = signalingUrl;

/** @param {string} id */
const shortId = (id) => `${id.slice(0, 8)}…${id.slice(-6)}`;

/**
 * @param {string} tag
 * @param {Record<string, string>} [attributes]
 * @param {string} [text]
 */
function el(tag, attributes = {}, text = '') {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.textContent = text;
  return node;
}

/**
 * @param {string} event
 * @param {string} text
 * @param {string} [peerId]
 * @param {Record<string, string>} [attributes]
 */
function logEvent(event, text, peerId, attributes = {}) {
  const item = el('li', { 'data-event': event, ...(peerId ? { 'data-peer': peerId } : {}), ...attributes },
    `${new Date().toLocaleTimeString([], { hour12: false })} ${text}`);
  eventLog.append(item);
  while (eventLog.childElementCount > 200) eventLog.firstElementChild?.remove();
  item.scrollIntoView({ block: 'nearest' });
}

/** @param {HTMLElement} item */
function appendChat(item) {
  chatLog.append(item);
  while (chatLog.childElementCount > 500) chatLog.firstElementChild?.remove();
  item.scrollIntoView({ block: 'nearest' });
}

// ── peers ──

/** @param {string} peerId */
function peerItem(peerId) {
  return /** @type {HTMLElement | null} */ (peerList.querySelector(`li[data-peer="${CSS.escape(peerId)}"]`));
}

/** @param {string} peerId */
function addPeer(peerId) {
  if (peerItem(peerId)) return;
  const item = el('li', { 'data-peer': peerId });
  const connect = el('button', { type: 'button', 'data-testid': 'connect' }, 'Connect');
  connect.addEventListener('click', () => {
    manager.connect(peerId).catch((error) => logEvent('error', `connect ${shortId(peerId)}: ${error.message}`, peerId));
  });
  const conn = el('span', { class: 'conn' });
  conn.append(el('span', { 'data-testid': 'conn-state' }), el('span', { 'data-testid': 'path' }), el('span', { 'data-testid': 'rtt' }));
  item.append(el('span', { class: 'id' }, peerId), conn, connect);
  peerList.append(item);
  target.append(el('option', { value: peerId }, shortId(peerId)));
  renderConnection(peerId);
  noPeers.hidden = true;
}

/** @param {string} peerId */
function removePeer(peerId) {
  peerItem(peerId)?.remove();
  target.querySelector(`option[value="${CSS.escape(peerId)}"]`)?.remove();
  noPeers.hidden = peerList.childElementCount > 0;
}

/** @param {string} peerId */
function renderConnection(peerId) {
  const item = peerItem(peerId);
  if (!item) return;
  const conn = manager.getConnection(peerId);
  const state = conn?.state ?? 'closed';
  const stateEl = /** @type {HTMLElement} */ (item.querySelector('[data-testid="conn-state"]'));
  const pathEl = /** @type {HTMLElement} */ (item.querySelector('[data-testid="path"]'));
  const rttEl = /** @type {HTMLElement} */ (item.querySelector('[data-testid="rtt"]'));
  stateEl.textContent = conn ? (state === 'connecting' ? `connecting (${conn.path})` : state) : '';
  stateEl.className = `state-${state}`;
  /** @type {HTMLButtonElement} */ (item.querySelector('[data-testid="connect"]')).disabled = Boolean(conn);
  pathEl.textContent = state === 'open' && conn ? conn.path : '';
  pathEl.className = pathEl.textContent;
  rttEl.textContent = state === 'open' && conn?.rtt != null ? `${conn.rtt.toFixed(1)} ms` : '';
}

// The relay tells a page of peers on demand, not every join: ask again now
// and then, and when asked to. Peers we talk to are watched by the manager.
const refresh = () => { manager.refreshPeers().catch(() => {}); };
byTestId('refresh-peers').addEventListener('click', refresh);
setInterval(() => { if (manager.signalingState === 'open') refresh(); }, 10_000);

manager.addEventListener('registered', (event) => {
  const { peerId } = /** @type {CustomEvent} */ (event).detail;
  myPeerId.textContent = peerId;
  for (const id of manager.peers) addPeer(id);
  logEvent('registered', 'registered');
});
manager.addEventListener('signaling-state', (event) => {
  signalingState.textContent = /** @type {CustomEvent} */ (event).detail.state;
});
manager.addEventListener('peer-joined', (event) => {
  const { peerId } = /** @type {CustomEvent} */ (event).detail;
  addPeer(peerId);
  logEvent('peer-joined', `peer joined ${shortId(peerId)}`, peerId);
});
manager.addEventListener('peer-left', (event) => {
  const { peerId } = /** @type {CustomEvent} */ (event).detail;
  removePeer(peerId);
  logEvent('peer-left', `peer left ${shortId(peerId)}`, peerId);
});
manager.addEventListener('connection-state', (event) => {
  const { peerId, state, path } = /** @type {CustomEvent} */ (event).detail;
  renderConnection(peerId);
  logEvent('connection-state', `${shortId(peerId)}: ${state} (${path})`, peerId);
});
manager.addEventListener('connection', (event) => {
  const { connection } = /** @type {CustomEvent} */ (event).detail;
  if (!target.value) target.value = connection.peerId;
  connection.getQuality().then(() => renderConnection(connection.peerId), () => {});
});
manager.addEventListener('error', (event) => {
  const { code, message } = /** @type {CustomEvent} */ (event).detail;
  logEvent('error', `error ${code}: ${message}`, undefined, { 'data-code': code });
});
let tokens = 0;
manager.addEventListener('token', (event) => {
  // The event carries the role and expiry, never the token itself.
  const { role, expiresAt, via } = /** @type {CustomEvent} */ (event).detail;
  tokens++;
  tokenInfo.textContent = `${role}, expires ${new Date(expiresAt * 1000).toLocaleTimeString([], { hour12: false })}`;
  Object.assign(tokenInfo.dataset, { role, via, count: String(tokens) });
  logEvent('token', `token for role ${role} (${via})`, undefined, { 'data-via': via });
});

// Refresh round-trip times of open connections.
setInterval(() => {
  for (const item of peerList.querySelectorAll('li[data-peer]')) {
    const peerId = /** @type {string} */ (item.getAttribute('data-peer'));
    const conn = manager.getConnection(peerId);
    if (conn?.state === 'open') conn.getQuality().then(() => renderConnection(peerId), () => {});
  }
}, 1000);

// ── chat ──

manager.onMessage((peerId, message) => {
  const item = el('li');
  const isChat = typeof message === 'object' && message !== null && 'text' in message && typeof message.text === 'string';
  const text = isChat ? /** @type {{ text: string }} */ (message).text
    : message instanceof Uint8Array ? `[${message.byteLength} bytes]` : JSON.stringify(message);
  item.append(el('span', { class: 'meta' }, `${shortId(peerId)} →`), el('span', { 'data-from': peerId }, text));
  appendChat(item);
});

/** @type {HTMLFormElement} */ (document.getElementById('chat-form')).addEventListener('submit', (event) => {
  event.preventDefault();
  const to = target.value;
  const text = input.value;
  if (!to || !text) return;
  input.value = '';
  manager.sendMessage(to, { type: 'chat', text }).then(() => {
    const item = el('li');
    item.append(el('span', { class: 'meta' }, `→ ${shortId(to)}`), el('span', { 'data-to': to }, text));
    appendChat(item);
  }, (error) => logEvent('error', `send to ${shortId(to)}: ${error.message}`, to));
});

manager.init().catch((error) => {
  signalingState.textContent = `failed: ${error.code ?? error.message}`;
  logEvent('error', `init: ${error.message}`, undefined, { 'data-code': error.code ?? 'init' });
});
