// Browser test of TLS on the relay: real darkswap-relay processes serving
// certificates made by deploy/generate-certs.sh (a private CA each), and
// headless Chromium trusting one CA the way Chromium on Linux trusts any:
// the CA in the NSS database of the browser's $HOME (certutil), nothing
// pinned, no error ignored. Pages reach the relay only over wss:// and
// https://: tokens from /auth over https, registration on /signaling and a
// relayed circuit on /relay over wss. A relay whose certificate comes from
// another CA, or has expired, is refused.
// Run like browser.test.mjs (scripts/browser-tests.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
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

/** Another relay certificate from the CA in `certs`, valid for `days` (<= 0: already expired). */
function anotherFromCa(certs, days) {
  const dir = tempDir('dsw-certs-');
  for (const file of ['ca.pem', 'ca-key.pem']) copyFileSync(join(certs, file), join(dir, file));
  execFileSync('bash', [GENERATE_CERTS, dir, '--hosts', 'localhost 127.0.0.1', '--days', String(days)], { stdio: ['ignore', 'ignore', 'pipe'] });
  return dir;
}

/**
 * A $HOME whose NSS database (~/.pki/nssdb, what Chromium on Linux reads)
 * trusts the CA of `certs` to identify servers; the browser's environment.
 */
function homeTrusting(certs) {
  const home = tempDir('dsw-home-');
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password'], { stdio: ['ignore', 'ignore', 'pipe'] });
  execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-t', 'C,,', '-n', 'darkswap test CA', '-i', join(certs, 'ca.pem')], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { ...process.env, HOME: home };
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

test('a page trusting the generated CA earns its token over https, registers over wss and chats directly and over a wss circuit', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const certs = generateCerts();
  const relay = await startTlsRelay(certs);
  const env = homeTrusting(certs);
  const page = (query) => openPage(t, { baseUrl: files.baseUrl, signalingUrl: wssUrl(relay), query, env });

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

/** Pages trusting `env`'s CA, pointed at `relay`, fail at the TLS handshake: over https and over wss. */
async function refusedBy(t, relay, env) {
  const open = (query) => openPage(t, {
    baseUrl: files.baseUrl, signalingUrl: wssUrl(relay), query, register: false, env,
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
}

test('a page trusting one CA cannot reach a relay whose certificate comes from another, over https or wss', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const trusted = generateCerts();
  const other = await startTlsRelay(generateCerts());
  await refusedBy(t, other, homeTrusting(trusted));
});

test('a page trusting the CA refuses the relay once its certificate has expired', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const certs = generateCerts();
  const expired = await startTlsRelay(anotherFromCa(certs, -1));
  await refusedBy(t, expired, homeTrusting(certs));
});
