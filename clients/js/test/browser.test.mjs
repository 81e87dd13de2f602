// Browser tests: example.html in Debian's headless Chromium against the real darkswap-relay.
//
// Run (the relay binary is built by cargo beforehand; the netns keeps every ICE
// candidate on 127.0.0.1):
//
//   ip netns add dswjs && ip -n dswjs link set lo up
//   DARKSWAP_TEST_RELAY_BIN=~/.cache/darkswap-target/debug/darkswap-relay \
//     ip netns exec dswjs node --test clients/js/test/
//   ip netns del dswjs
//
// (What Chromium needs for WebRTC on loopback: see ./harness.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  NETWORK_EXAMPLE, Relay, TEST_TIMEOUT_MS, WAIT_MS, WEBRTC_EXAMPLE, apiPath, chat, connectResult, openPage as openExamplePage,
  peerSelector, registeredPeerId, relayEnv, removeTempDirs, startStaticServer, waitForPeer, waitPath, waitRtt, waitText,
} from './harness.mjs';

/** @type {Relay} */
let relay;
let signalingUrl;
/** @type {{ baseUrl: string, close: () => Promise<void> }} */
let files;

/**
 * Opens example.html against this file's relay (an open one, on its defaults).
 * @param {import('node:test').TestContext} t
 * @param {Record<string, string>} [query]
 */
function openPage(t, query = {}) {
  return openExamplePage(t, { baseUrl: files.baseUrl, signalingUrl, query });
}

// ── lifecycle ──

before(async () => {
  files = await startStaticServer();
  relay = await Relay.start();
  signalingUrl = relay.signalingUrl;
});

after(async () => {
  await relay?.stop();
  await files?.close();
  removeTempDirs();
});

// ── tests ──

test('two pages connect over a direct data channel and chat both ways', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const a = await openPage(t);
  const b = await openPage(t);
  assert.notEqual(a.peerId, b.peerId);
  await waitForPeer(a.page, b.peerId);
  await waitForPeer(b.page, a.peerId);

  await a.page.locator(`[data-testid="peer-list"] li[data-peer="${b.peerId}"] [data-testid="connect"]`).click();
  await waitPath(a.page, b.peerId, 'direct');
  await waitPath(b.page, a.peerId, 'direct');
  assert.equal(await apiPath(a.page, b.peerId), 'open/direct');
  assert.equal(await apiPath(b.page, a.peerId), 'open/direct');
  assert.equal(await a.page.evaluate((id) => window.darkswap.getConnection(id).initiator, b.peerId), true);
  assert.equal(await b.page.evaluate((id) => window.darkswap.getConnection(id).initiator, a.peerId), false);

  await chat(a, b, 'hello from A');
  await chat(b, a, 'hello back from B');
  await chat(a, b, 'ünïcødé ✓ "quotes"');
  await waitRtt(a.page, b.peerId);
  await waitRtt(b.page, a.peerId);
});

test('a page that cannot use WebRTC still chats through a relayed circuit', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const a = await openPage(t, { iceTimeout: '2000' });
  const b = await openPage(t, { iceTimeout: '2000', policy: 'relay' });
  await waitForPeer(a.page, b.peerId);
  await waitForPeer(b.page, a.peerId);

  // Everything A sends on /relay, to check the wire format of docs/signaling.md.
  const relayFrames = [];
  a.page.on('websocket', (ws) => {
    if (new URL(ws.url()).pathname === '/relay') ws.on('framesent', ({ payload }) => relayFrames.push(payload));
  });

  // The normal page offers; the relay-only page gathers no candidate, so the
  // offer times out and the offering side falls back to a circuit.
  await a.page.locator(`[data-testid="peer-list"] li[data-peer="${b.peerId}"] [data-testid="connect"]`).click();
  await waitPath(a.page, b.peerId, 'relayed');
  await waitPath(b.page, a.peerId, 'relayed');
  assert.equal(await apiPath(a.page, b.peerId), 'open/relayed');
  assert.equal(await apiPath(b.page, a.peerId), 'open/relayed');

  await chat(a, b, 'relayed hello from A');
  await chat(b, a, 'relayed hello back from B');
  await sendBinary(a, b);
  await sendBinary(b, a);
  await waitRtt(a.page, b.peerId);
  await waitRtt(b.page, a.peerId);

  // Wire format: a text attach first, then one handshake frame (kind 4: version,
  // algorithm, 64-byte key share, 64-byte Ed25519 signature), then only sealed
  // frames (kind 5 + an end-to-end encrypted frame): the relay sees no payload.
  const [attach, handshake, ...sealed] = relayFrames;
  assert.equal(typeof attach, 'string');
  assert.equal(JSON.parse(attach).type, 'attach');
  assert.ok(Buffer.isBuffer(handshake) && handshake[0] === 4 && handshake.length === 131, 'handshake frame');
  assert.deepEqual([...handshake.subarray(1, 3)], [1, 1], 'version 1, AES-256-GCM');
  assert.ok(sealed.every((frame) => Buffer.isBuffer(frame) && frame[0] === 5 && frame[1] === 1), 'only sealed frames after the handshake');
  assert.ok(sealed.length >= 3, `chat, bytes and pings were sent sealed (${sealed.length} frames)`);
  for (const frame of relayFrames.slice(1)) {
    assert.ok(!frame.includes('relayed hello'), 'no plaintext on the wire');
    assert.ok(!frame.includes(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 'no raw bytes on the wire');
  }
  // Sealed plaintext = kind byte + payload; overhead 30 (header 14, tag 16).
  const chatLength = 1 + Buffer.byteLength(JSON.stringify({ type: 'chat', text: 'relayed hello from A' }));
  assert.ok(sealed.some((frame) => frame.length === 1 + 30 + chatLength), 'the chat message, sealed');
  assert.ok(sealed.some((frame) => frame.length === 1 + 30 + 1 + 256), 'the 256 bytes, sealed');
  assert.ok(sealed.some((frame) => frame.length === 1 + 30 + 9), 'RTT is measured with sealed 9-byte pings');

  // Closing on purpose closes the circuit for both sides, and nobody reconnects.
  await a.page.evaluate((id) => window.darkswap.closeConnection(id), b.peerId);
  await b.page.waitForFunction((id) => window.darkswap.getConnection(id) === undefined, a.peerId, { timeout: WAIT_MS });
  await waitText(b.page, peerSelector(a.peerId, 'path'), '');
  assert.equal(await apiPath(a.page, b.peerId), 'none');
});

/**
 * Makes the relay, as page `peer` sees it, tamper with the next frame of `kind`
 * it forwards to that page: `tamper.mode = 4` (handshake) or `5` (sealed).
 */
async function tamperingRelay(peer) {
  const tamper = { mode: 0, done: 0 };
  await peer.context.routeWebSocket((url) => url.pathname === '/relay', (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((message) => server.send(message));
    server.onMessage((message) => {
      if (Buffer.isBuffer(message) && tamper.mode !== 0 && message[0] === tamper.mode) {
        const altered = Buffer.from(message);
        altered[altered.length - 1] ^= 0x01; // last signature byte, or last tag byte
        tamper.mode = 0;
        tamper.done++;
        ws.send(altered);
        return;
      }
      ws.send(message);
    });
  });
  return tamper;
}

test('a relay that alters a handshake or a ciphertext is caught, and honest circuits still work', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const a = await openPage(t, { iceTimeout: '2000' });
  const b = await openPage(t, { iceTimeout: '2000', policy: 'relay' });
  await waitForPeer(a.page, b.peerId);
  await waitForPeer(b.page, a.peerId);
  const tamper = await tamperingRelay(b);
  await b.page.evaluate(() => {
    window.closeCodes = [];
    window.darkswap.addEventListener('connection-state', (event) => {
      if (event.detail.state === 'closed') window.closeCodes.push(event.detail.code);
    });
  });

  // 1. A's signed key altered on its way to B: B refuses the circuit.
  tamper.mode = 4;
  assert.equal(await connectResult(b, a), 'e2e_bad_signature');
  assert.equal(tamper.done, 1);
  await a.page.waitForFunction((id) => window.darkswap.getConnection(id) === undefined, b.peerId, { timeout: WAIT_MS });

  // 2. Handshake intact, then one ciphertext from A altered: B closes the connection.
  tamper.mode = 5;
  assert.equal(await connectResult(b, a), 'open/relayed');
  // The page measures RTT as soon as a connection opens, so the frame altered
  // may be A's ping or this message; either way B must close, delivering nothing.
  // (Sent on this connection: sendMessage() would open a new one once it is gone.)
  await a.page.evaluate((id) => window.darkswap.getConnection(id)?.send({ type: 'chat', text: 'altered on the way' }).catch(() => {}), b.peerId);
  await b.page.waitForFunction(() => window.closeCodes.includes('e2e_authentication_failed'), null, { timeout: WAIT_MS });
  assert.equal(tamper.done, 2);
  const shown = await b.page.locator('[data-testid="chat-log"]').textContent();
  assert.ok(!shown?.includes('altered on the way'), 'nothing of the altered frame was delivered');
  await a.page.waitForFunction((id) => window.darkswap.getConnection(id) === undefined, b.peerId, { timeout: WAIT_MS });

  // 3. The same peers over the same relay, untouched: works both ways.
  assert.equal(await connectResult(b, a), 'open/relayed');
  await waitPath(a.page, b.peerId, 'relayed');
  await chat(b, a, 'honest circuit from B');
  await chat(a, b, 'honest circuit from A');
  assert.equal(tamper.done, 2);
});

test('a reloaded page keeps its peer id, re-registers and is reconnected', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const a = await openPage(t);
  const b = await openPage(t, { key: 'reload-test-identity' });
  await waitForPeer(a.page, b.peerId);
  await a.page.locator(`[data-testid="peer-list"] li[data-peer="${b.peerId}"] [data-testid="connect"]`).click();
  await waitPath(a.page, b.peerId, 'direct');
  await waitPath(b.page, a.peerId, 'direct');
  await chat(a, b, 'before reload');

  await b.page.reload();
  assert.equal(await registeredPeerId(b.page), b.peerId, 'same IndexedDB identity after reload');

  // A saw B leave and come back...
  await a.page.waitForFunction((peerId) => {
    const events = [...document.querySelectorAll(`[data-testid="event-log"] li[data-peer="${peerId}"]`)]
      .map((item) => item.getAttribute('data-event'));
    const left = events.indexOf('peer-left');
    return left >= 0 && events.indexOf('peer-joined', left) > left;
  }, b.peerId, { timeout: WAIT_MS, polling: 100 });
  await waitForPeer(a.page, b.peerId);
  // ...and, as the side that initiated the lost connection, reconnected by itself.
  await waitPath(a.page, b.peerId, 'direct');
  await waitPath(b.page, a.peerId, 'direct');
  assert.equal(await b.page.evaluate((id) => window.darkswap.getConnection(id).initiator, a.peerId), false);

  await chat(b, a, 'after reload from B');
  await chat(a, b, 'after reload from A');
});

test('simultaneous connects from both sides end in one direct connection', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const a = await openPage(t);
  const b = await openPage(t);
  await waitForPeer(a.page, b.peerId);
  await waitForPeer(b.page, a.peerId);

  // Both sides call connect() at once; if both offers cross, the smaller peer id yields.
  await Promise.all([
    a.page.evaluate((id) => { window.glare = window.darkswap.connect(id).then((c) => c.path); }, b.peerId),
    b.page.evaluate((id) => { window.glare = window.darkswap.connect(id).then((c) => c.path); }, a.peerId),
  ]);
  assert.equal(await a.page.evaluate(() => window.glare), 'direct');
  assert.equal(await b.page.evaluate(() => window.glare), 'direct');
  const initiators = await Promise.all([
    a.page.evaluate((id) => window.darkswap.getConnection(id).initiator, b.peerId),
    b.page.evaluate((id) => window.darkswap.getConnection(id).initiator, a.peerId),
  ]);
  // Exactly one side initiated the connection both ended up with (with true glare:
  // the larger peer id, whose offer the smaller one answered).
  assert.equal(initiators.filter(Boolean).length, 1, `initiators: ${initiators}`);
  await chat(a, b, 'after glare from A');
  await chat(b, a, 'after glare from B');
});

/** Sends 256 bytes 0..255 through the API and checks they arrive unchanged. */
async function sendBinary(from, to) {
  await to.page.evaluate((peer) => {
    window.binaryReceived = null;
    const off = window.darkswap.onMessage((sender, message) => {
      if (sender === peer && message instanceof Uint8Array) { off(); window.binaryReceived = [...message]; }
    });
  }, from.peerId);
  await from.page.evaluate((peer) => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    return window.darkswap.sendMessage(peer, bytes);
  }, to.peerId);
  const received = await (await to.page.waitForFunction(() => window.binaryReceived, null, { timeout: WAIT_MS })).jsonValue();
  assert.deepEqual(received, Array.from({ length: 256 }, (_, i) => i));
}

/**
 * Starts the native Rust peer (`cargo run --example webrtc_example URL`): it
 * registers, greets every peer that connects with "hello from rust" and answers
 * each chat message with "echo: <text>". Resolves with its peer id and a way to
 * wait for a line of its output.
 * @param {import('node:test').TestContext} t
 * @param {string[]} [extraArgs] e.g. `--relay-only`
 */
function startNativePeer(t, extraArgs = []) {
  return spawnPeer(t, WEBRTC_EXAMPLE, [signalingUrl, '--loopback', ...extraArgs]);
}

/**
 * Starts a Rust peer binary with `args`; resolves once it printed its peer id.
 * @param {import('node:test').TestContext} t
 * @param {string} bin
 * @param {string[]} args
 */
function spawnPeer(t, bin, args) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: relayEnv() });
  const lines = [];
  const waiters = [];
  const onLine = (line) => {
    lines.push(line);
    for (const w of waiters.splice(0)) if (!w(line)) waiters.push(w);
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', (line) => lines.push(`stderr: ${line}`));
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  /** Waits (bounded) for an output line matching `re`. */
  const waitLine = (re) => new Promise((resolveLine, reject) => {
    const found = lines.find((l) => re.test(l));
    if (found) return resolveLine(found);
    const timer = setTimeout(() => reject(new Error(`native peer never printed ${re}:\n${lines.join('\n')}`)), WAIT_MS);
    waiters.push((line) => {
      if (!re.test(line)) return false;
      clearTimeout(timer);
      resolveLine(line);
      return true;
    });
  });
  const exited = new Promise((done) => child.once('exit', (code) => done(code)));
  return waitLine(/^peer id: /).then((line) => ({ peerId: line.slice('peer id: '.length), waitLine, exited }));
}

test('a native Rust peer and a Chromium page talk over a direct data channel', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const native = await startNativePeer(t);
  const page = await openPage(t);
  await waitForPeer(page.page, native.peerId);
  await page.page.locator(peerSelector(native.peerId, 'connect')).click();
  await waitPath(page.page, native.peerId, 'direct');
  assert.equal(await apiPath(page.page, native.peerId), 'open/direct');
  await native.waitLine(new RegExp(`^connected: ${page.peerId}$`));

  // Rust → browser: the greeting shows in the page's chat log.
  const fromNative = page.page.locator(`[data-testid="chat-log"] [data-from="${native.peerId}"]`);
  await fromNative.filter({ hasText: 'hello from rust' }).waitFor({ state: 'visible', timeout: WAIT_MS });
  // Browser → Rust, and Rust's answer back.
  await page.page.locator('[data-testid="chat-target"]').selectOption(native.peerId, { timeout: WAIT_MS });
  await page.page.locator('[data-testid="chat-input"]').fill('hello from chromium');
  await page.page.locator('[data-testid="chat-send"]').click();
  await native.waitLine(new RegExp(`^received from ${page.peerId}: hello from chromium$`));
  await fromNative.filter({ hasText: 'echo: hello from chromium' }).waitFor({ state: 'visible', timeout: WAIT_MS });
  await waitRtt(page.page, native.peerId);
});

test('a native Rust peer WebRTC cannot reach and a Chromium page talk over an end-to-end encrypted circuit', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  // The native peer gathers no ICE candidate (--relay-only): the page's offer
  // times out and the page falls back to a circuit the native peer accepts.
  const native = await startNativePeer(t, ['--relay-only']);
  const page = await openPage(t, { iceTimeout: '2000' });
  // Everything on the page's /relay socket, both ways: what the relay forwards.
  const sent = [];
  const received = [];
  page.page.on('websocket', (ws) => {
    if (new URL(ws.url()).pathname !== '/relay') return;
    ws.on('framesent', ({ payload }) => sent.push(payload));
    ws.on('framereceived', ({ payload }) => received.push(payload));
  });
  await waitForPeer(page.page, native.peerId);
  await page.page.locator(peerSelector(native.peerId, 'connect')).click();
  await waitPath(page.page, native.peerId, 'relayed');
  assert.equal(await apiPath(page.page, native.peerId), 'open/relayed');
  await native.waitLine(new RegExp(`^path: ${page.peerId} relayed$`));

  const fromNative = page.page.locator(`[data-testid="chat-log"] [data-from="${native.peerId}"]`);
  await fromNative.filter({ hasText: 'hello from rust' }).waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.page.locator('[data-testid="chat-target"]').selectOption(native.peerId, { timeout: WAIT_MS });
  await page.page.locator('[data-testid="chat-input"]').fill('hello from chromium');
  await page.page.locator('[data-testid="chat-send"]').click();
  await native.waitLine(new RegExp(`^received from ${page.peerId}: hello from chromium$`));
  await fromNative.filter({ hasText: 'echo: hello from chromium' }).waitFor({ state: 'visible', timeout: WAIT_MS });

  // The relay saw the native peer's signed key, then only sealed frames, and
  // no plaintext either way.
  const binaryIn = received.filter((frame) => Buffer.isBuffer(frame));
  const [handshake, ...sealed] = binaryIn;
  assert.ok(handshake && handshake[0] === 4 && handshake.length === 131, 'the native handshake frame');
  assert.deepEqual([...handshake.subarray(1, 3)], [1, 1], 'version 1, AES-256-GCM');
  assert.ok(sealed.length >= 2 && sealed.every((frame) => frame[0] === 5 && frame[1] === 1), 'then only sealed frames');
  const binaryOut = sent.filter((frame) => Buffer.isBuffer(frame));
  assert.ok(binaryOut[0][0] === 4 && binaryOut.slice(1).every((frame) => frame[0] === 5), 'the page seals too');
  for (const frame of [...binaryIn, ...binaryOut]) {
    for (const text of ['hello from rust', 'hello from chromium', 'echo:']) {
      assert.ok(!frame.includes(text), `no plaintext "${text}" on the relay`);
    }
  }
  // Sealed plaintext = kind byte + the JSON text; overhead 30 (header 14, tag 16).
  const greeting = Buffer.byteLength(JSON.stringify({ type: 'chat', text: 'hello from rust' }));
  assert.ok(sealed.some((frame) => frame.length === 1 + 30 + 1 + greeting), 'the greeting, sealed');

  // Closing on purpose closes the circuit for the native peer too.
  await page.page.evaluate((id) => window.darkswap.closeConnection(id), native.peerId);
  await native.waitLine(new RegExp(`^disconnected: ${page.peerId}$`));
});

test('a Network user reaches a Chromium page with create_webrtc_data_channel, send_webrtc_message and receive_webrtc_message', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const page = await openPage(t);
  // The node registers on the relay's public port with its libp2p identity
  // and opens the channel to the page itself.
  const port = new URL(signalingUrl).port;
  const node = await spawnPeer(t, NETWORK_EXAMPLE, ['--signaling', `/ip4/127.0.0.1/tcp/${port}/ws`, '--peer', page.peerId]);
  await node.waitLine(/^path: direct$/);
  await waitPath(page.page, node.peerId, 'direct');
  const fromNode = page.page.locator(`[data-testid="chat-log"] [data-from="${node.peerId}"]`);
  await fromNode.filter({ hasText: 'hello from a darkswap network' }).waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.page.evaluate((id) => window.darkswap.sendMessage(id, { type: 'chat', text: 'hello from chromium' }), node.peerId);
  await node.waitLine(/^received: hello from chromium$/);
  await fromNode.filter({ hasText: 'echo: hello from chromium' }).waitFor({ state: 'visible', timeout: WAIT_MS });
  // The page closes the channel; the node sees it end and exits cleanly.
  await page.page.evaluate((id) => window.darkswap.closeConnection(id), node.peerId);
  await node.waitLine(/^done$/);
  assert.equal(await node.exited, 0);
});
