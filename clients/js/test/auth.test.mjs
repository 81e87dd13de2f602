// Browser tests of relay tokens: example.html (auth=auto) in headless
// Chromium against real darkswap-relay processes configured as closed relays
// (anonymous clients may not register), with short token lifetimes, or with
// circuits reserved to admins. Run like browser.test.mjs (scripts/browser-tests.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Relay, TEST_TIMEOUT_MS, WAIT_MS, chat, connectResult, openPage, registeredPeerId, removeTempDirs,
  startStaticServer, waitForPeer, waitPath, waitText,
} from './harness.mjs';

/** A relay whose anonymous role (guest) may not register on /signaling. */
const CLOSED = { DARKSWAP_RELAY_AUTH__ANONYMOUS_ROLE: 'guest' };

/** @type {{ baseUrl: string, close: () => Promise<void> }} */
let files;
/** @type {Relay[]} */
const relays = [];

before(async () => { files = await startStaticServer(); });

after(async () => {
  for (const relay of relays) await relay.stop();
  await files?.close();
  removeTempDirs();
});

/** @param {Record<string, string>} env */
async function startRelay(env) {
  const relay = await Relay.start({ env });
  relays.push(relay);
  return relay;
}

/**
 * @param {import('node:test').TestContext} t
 * @param {Relay} relay
 * @param {Record<string, string>} [query]
 * @param {boolean} [register]
 */
function page(t, relay, query = {}, register = true) {
  return openPage(t, { baseUrl: files.baseUrl, signalingUrl: relay.signalingUrl, query, register });
}

/** Asserts that nothing the page printed contains a JWT (they all start with `eyJ`). */
function assertNoTokenLogged(p) {
  assert.deepEqual(p.console.filter((line) => line.includes('eyJ')), [], 'a token was logged');
}

/** Codes of the `error` events the page logged. */
function errorCodes(p) {
  return p.page.$$eval('[data-testid="event-log"] li[data-event="error"]', (items) => items.map((i) => i.getAttribute('data-code')));
}

test('on a closed relay a page without a token is refused once; pages with auto tokens connect directly and relayed', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const relay = await startRelay(CLOSED);

  // No token: init() fails with `unauthorized`, and the page does not try again.
  const anonymous = await page(t, relay, {}, false);
  await waitText(anonymous.page, '[data-testid="signaling-state"]', 'failed: unauthorized');
  assert.equal(await anonymous.page.evaluate(() => window.darkswap.signalingState), 'closed', 'no reconnect pending');
  assert.deepEqual(await anonymous.page.evaluate(() => window.darkswapStates), ['new', 'connecting', 'failed']);
  assert.deepEqual(await errorCodes(anonymous), ['unauthorized']);

  // Pages that earn a token register (role user) and find each other...
  const a = await page(t, relay, { auth: 'auto', iceTimeout: '2000' });
  const b = await page(t, relay, { auth: 'auto', iceTimeout: '2000' });
  for (const p of [a, b]) {
    assert.equal(await p.page.locator('[data-testid="token"]').getAttribute('data-role'), 'user');
    assert.equal(await p.page.locator('[data-testid="token"]').getAttribute('data-via'), 'challenge');
  }
  await waitForPeer(a.page, b.peerId);
  await waitForPeer(b.page, a.peerId);
  // ...over a direct data channel...
  assert.equal(await connectResult(a, b), 'open/direct');
  await waitPath(b.page, a.peerId, 'direct');
  await chat(a, b, 'direct behind tokens');
  await chat(b, a, 'and back');

  // ...and relayed, with a third page that cannot use WebRTC.
  const c = await page(t, relay, { auth: 'auto', iceTimeout: '2000', policy: 'relay' });
  await waitForPeer(a.page, c.peerId);
  assert.equal(await connectResult(a, c), 'open/relayed');
  await waitPath(c.page, a.peerId, 'relayed');
  await chat(a, c, 'relayed behind tokens');
  await chat(c, a, 'relayed back');

  // Every socket showed its token as a subprotocol, and the anonymous page
  // opened exactly one socket all along.
  assert.deepEqual(anonymous.sockets, ['/signaling']);
  assert.equal(await anonymous.page.evaluate(() => window.darkswap.signalingState), 'closed');
  for (const p of [anonymous, a, b, c]) assertNoTokenLogged(p);
});

test('a token refreshed before it expires keeps a page registered and reachable', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  // Tokens live 6 s: refreshed after 4.5 s, each refresh retiring the old
  // token, which makes the relay close the socket that showed it.
  const relay = await startRelay({ ...CLOSED, DARKSWAP_RELAY_AUTH__TOKEN_TTL_SECS: '6' });
  const a = await page(t, relay, { auth: 'auto' });
  // Three refreshes: the page has outlived its first tokens.
  await a.page.waitForFunction(() => Number(document.querySelector('[data-testid="token"]')?.dataset.count) >= 4,
    null, { timeout: 30_000, polling: 100 });
  assert.equal(await registeredPeerId(a.page), a.peerId);
  const vias = await a.page.$$eval('[data-testid="event-log"] li[data-event="token"]', (items) => items.map((i) => i.getAttribute('data-via')));
  assert.deepEqual(vias.slice(0, 4), ['challenge', 'refresh', 'refresh', 'refresh'], 'renewed by refresh, not by expiry');
  assert.deepEqual(await errorCodes(a), [], 'no token expired, nothing refused');

  // Reachable on its current token: another page connects and chats.
  const b = await page(t, relay, { auth: 'auto' });
  await registeredPeerId(a.page);
  await waitForPeer(b.page, a.peerId);
  assert.equal(await connectResult(b, a), 'open/direct');
  await chat(b, a, 'after three refreshes');
  await chat(a, b, 'still here');
  assertNoTokenLogged(a);
});

test('a page whose token an admin revokes is closed out and does not retry; others keep working', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const relay = await startRelay(CLOSED);
  const a = await page(t, relay, { auth: 'auto' });
  const b = await page(t, relay, { auth: 'auto' });
  await waitForPeer(b.page, a.peerId);

  // An admin token minted offline with the relay's key revokes every token of A.
  const admin = await relay.issueToken(b.peerId, 'admin');
  const response = await fetch(`${relay.httpUrl}/auth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
    body: JSON.stringify({ peer_id: a.peerId }),
  });
  assert.equal(response.status, 200, await response.text());

  // A's socket is closed with 4004 "token revoked": reported, not retried.
  await a.page.locator('[data-testid="event-log"] li[data-event="error"][data-code="unauthorized"]')
    .waitFor({ state: 'attached', timeout: WAIT_MS });
  assert.equal(await a.page.evaluate(() => window.darkswap.signalingState), 'closed');
  await b.page.locator(`[data-testid="peer-list"] li[data-peer="${a.peerId}"]`).waitFor({ state: 'detached', timeout: WAIT_MS });
  assert.deepEqual(a.sockets, ['/signaling'], 'one socket, no reconnect');

  // B is unaffected: a new page reaches it.
  const c = await page(t, relay, { auth: 'auto' });
  await waitForPeer(c.page, b.peerId);
  assert.equal(await connectResult(c, b), 'open/direct');
  await chat(c, b, 'after the revocation');
  assert.equal(await a.page.evaluate(() => window.darkswap.signalingState), 'closed');
});

test('circuits reserved to admins are refused with forbidden; the direct path still works', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const relay = await startRelay({ DARKSWAP_RELAY_AUTH__CIRCUIT_ROLE: 'admin' });
  const a = await page(t, relay, { auth: 'auto', iceTimeout: '1000' });
  const b = await page(t, relay, { auth: 'auto', iceTimeout: '1000', policy: 'relay' });
  const c = await page(t, relay, { auth: 'auto' });
  await waitForPeer(a.page, b.peerId);
  await waitForPeer(a.page, c.peerId);

  // WebRTC to B cannot work, and the fallback circuit is refused.
  assert.equal(await connectResult(a, b), 'forbidden');
  assert.ok((await errorCodes(a)).includes('forbidden'));
  assert.equal(await a.page.evaluate(() => window.darkswap.signalingState), 'open', 'the socket stays');
  // The same page still connects directly to C.
  assert.equal(await connectResult(a, c), 'open/direct');
  await chat(a, c, 'direct while circuits are forbidden');
});

test('a page reports its connection states in order through a relay restart, re-registers under its id and is reached again', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const relay = await startRelay(CLOSED);
  const port = Number(relay.addr.split(':').pop());
  const a = await page(t, relay, { auth: 'auto' });
  const b = await page(t, relay, { auth: 'auto' });
  await waitText(a.page, '[data-testid="connection-state"]', 'connected');

  // The relay goes away: the page is disconnected and keeps trying.
  await relay.stop();
  await a.page.waitForFunction(() => window.darkswapStates.includes('disconnected'), null, { timeout: WAIT_MS });
  // Back on the same port with the same key: both pages re-register as themselves.
  relays.push(await Relay.start({ env: CLOSED, port, dataDir: relay.dataDir }));
  await a.page.waitForFunction(() => window.darkswapStates.lastIndexOf('connected') > window.darkswapStates.indexOf('disconnected'), null, { timeout: WAIT_MS });
  assert.equal(await registeredPeerId(a.page), a.peerId);
  assert.equal(await registeredPeerId(b.page), b.peerId);
  await waitForPeer(a.page, b.peerId);
  assert.equal(await connectResult(a, b), 'open/direct');
  await chat(a, b, 'after the relay came back');

  // Closing on purpose ends it: `closed`, and no reconnection after.
  await a.page.evaluate(() => window.darkswap.close());
  const states = await a.page.evaluate(() => window.darkswapStates);
  assert.deepEqual(states.slice(0, 4), ['new', 'connecting', 'connected', 'disconnected'], states.join(' → '));
  assert.deepEqual(states.slice(-2), ['connected', 'closed'], states.join(' → '));
  const between = states.slice(4, -2);
  assert.ok(between.every((s) => s === 'connecting' || s === 'disconnected'), states.join(' → '));
  assert.ok(between.includes('connecting'), 'reconnection was tried');
  await waitText(a.page, '[data-testid="connection-state"]', 'closed');
});

/**
 * Type of the local candidate of the pair a page's direct connection uses.
 * @param {import('playwright-core').Page} p
 * @param {string} peerId
 */
function localCandidateType(p, peerId) {
  return p.evaluate(async (id) => {
    const pc = window.darkswap.getConnection(id)._direct.pc;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId); });
    if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
    return pair ? stats.get(pair.localCandidateId)?.candidateType ?? null : null;
  }, peerId);
}

test("pages that may only use relay candidates connect over WebRTC through the relay's own TURN server", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const relay = await startRelay({ DARKSWAP_RELAY_TURN__ENABLED: 'true', DARKSWAP_RELAY_TURN__LISTEN: '127.0.0.1:0' });
  // policy=relay: no host candidate; relayIce=1: the relay's STUN/TURN with minted credentials.
  const query = { policy: 'relay', relayIce: '1', iceTimeout: '10000' };
  const a = await page(t, relay, query);
  const b = await page(t, relay, query);
  for (const p of [a, b]) {
    await p.page.waitForFunction(() => window.darkswap.iceServers.some((s) => String(s.urls).startsWith('turn:') && s.credential), null, { timeout: WAIT_MS });
  }
  const servers = await a.page.evaluate(() => window.darkswap.iceServers);
  assert.match(String(servers[0].urls), /^stun:127\.0\.0\.1:\d+$/);
  await waitForPeer(a.page, b.peerId);
  assert.equal(await connectResult(a, b), 'open/direct');
  await waitPath(b.page, a.peerId, 'direct');
  await chat(a, b, 'through the relay TURN');
  await chat(b, a, 'and back');
  assert.equal(await localCandidateType(a.page, b.peerId), 'relay');
  assert.equal(await localCandidateType(b.page, a.peerId), 'relay');
});
