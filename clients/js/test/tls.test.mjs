// Browser test of TLS on the relay: real darkswap-relay processes serving
// certificates made by deploy/generate-certs.sh (a private CA each), and
// headless Chromium trusting one of them through
// --ignore-certificate-errors-spki-list, the pin of the relay certificate's
// public key (Chromium matches the pin against the chain the server sends,
// which is the relay's certificate alone: a pin of the CA's key was tried and
// does not match, the page fails with auth_unavailable). Pages reach the relay only over wss:// and https://: tokens
// from /auth over https, registration on /signaling and a relayed circuit on
// /relay over wss. A relay whose certificate is not pinned is refused.
// Run like browser.test.mjs (scripts/browser-tests.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  CLIENT_DIR, Relay, TEST_TIMEOUT_MS, WAIT_MS, chat, connectResult, openPage, removeTempDirs,
  startStaticServer, tempDir, waitForPeer, waitPath,
} from './harness.mjs';

const GENERATE_CERTS = resolve(CLIENT_DIR, '../../deploy/generate-certs.sh');

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

/** A new CA and relay certificate for localhost and 127.0.0.1; returns their directory. */
function generateCerts() {
  const dir = tempDir('dsw-certs-');
  execFileSync('bash', [GENERATE_CERTS, dir, '--hosts', 'localhost 127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return dir;
}

/** Base64 SHA-256 of a PEM certificate's SubjectPublicKeyInfo: what the Chromium flag takes. */
function spkiPin(pemFile) {
  const spki = new X509Certificate(readFileSync(pemFile)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** A closed relay (registering takes a token) serving the certificate in `certs` on its public port. */
async function startTlsRelay(certs) {
  const relay = await Relay.start({
    env: {
      DARKSWAP_RELAY_AUTH__ANONYMOUS_ROLE: 'guest',
      DARKSWAP_RELAY_TLS__CERT_FILE: join(certs, 'relay.pem'),
      DARKSWAP_RELAY_TLS__KEY_FILE: join(certs, 'relay-key.pem'),
      DARKSWAP_RELAY_TLS__LIBP2P_LISTEN_ADDRESSES: '["/ip4/127.0.0.1/tcp/0/tls/ws"]',
    },
  });
  relays.push(relay);
  return relay;
}

/** The relay's signaling URL over TLS, under the certificate's name. */
const wssUrl = (relay) => `wss://localhost:${relay.addr.split(':').pop()}/signaling`;

test('a page pinning the relay certificate earns its token over https, registers over wss and chats directly and over a wss circuit', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const certs = generateCerts();
  const relay = await startTlsRelay(certs);
  const pin = [`--ignore-certificate-errors-spki-list=${spkiPin(join(certs, 'relay.pem'))}`];
  const page = (query) => openPage(t, { baseUrl: files.baseUrl, signalingUrl: wssUrl(relay), query, extraArgs: pin });

  const a = await page({ auth: 'auto', iceTimeout: '2000' });
  const b = await page({ auth: 'auto', iceTimeout: '2000' });
  for (const p of [a, b]) {
    // The token came from /auth/challenge and /auth/token, over https.
    assert.equal(await p.page.locator('[data-testid="token"]').getAttribute('data-via'), 'challenge');
  }
  await waitForPeer(a.page, b.peerId);
  assert.equal(await connectResult(a, b), 'open/direct');
  await chat(a, b, 'over a relay with TLS');

  // A page that cannot use WebRTC: its circuit goes through wss://.../relay.
  const c = await page({ auth: 'auto', iceTimeout: '2000', policy: 'relay' });
  await waitForPeer(a.page, c.peerId);
  assert.equal(await connectResult(a, c), 'open/relayed');
  await waitPath(c.page, a.peerId, 'relayed');
  await chat(a, c, 'relayed over wss');
  await chat(c, a, 'and back');
  assert.deepEqual(c.sockets.filter((path) => path === '/relay').length, 1, c.sockets.join(' '));
});

test('a page pinning one relay certificate cannot reach a relay serving another, over https or wss', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const pinned = generateCerts();
  const other = await startTlsRelay(generateCerts());
  const pin = [`--ignore-certificate-errors-spki-list=${spkiPin(join(pinned, 'relay.pem'))}`];
  const open = (query) => openPage(t, {
    baseUrl: files.baseUrl, signalingUrl: wssUrl(other), query, register: false, extraArgs: pin,
  });
  // Its token request fails at the TLS handshake, so it never opens a socket.
  const earning = await open({ auth: 'auto' });
  // Without a token it opens the socket, which fails at the handshake too.
  const anonymous = await open({});
  for (const p of [earning, anonymous]) {
    await p.page.waitForFunction(() => window.darkswapStates?.includes('failed'), null, { timeout: WAIT_MS, polling: 50 });
    assert.deepEqual(await p.page.evaluate(() => window.darkswapStates), ['new', 'connecting', 'failed']);
  }
  assert.equal(await earning.page.locator('[data-testid="signaling-state"]').textContent(), 'failed: auth_unavailable');
  assert.deepEqual(earning.sockets, []);
  assert.equal(await anonymous.page.locator('[data-testid="signaling-state"]').textContent(), 'failed: signaling_unavailable');
  assert.deepEqual(anonymous.sockets, ['/signaling']);
});
