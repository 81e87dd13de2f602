// Cross-language test of the end-to-end encryption scheme: darkswap-e2e.js in
// Debian's headless Chromium against the Rust EncryptionManager, driven as the
// `e2e_interop` example of darkswap-p2p over JSON lines. Both directions,
// tampered and replayed frames, key rotation, and forged signed keys.
//
// The example is built by cargo beforehand (scripts/browser-tests.sh does);
// DARKSWAP_TEST_E2E_INTEROP overrides its path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const CLIENT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? `${process.env.HOME}/.cache/darkswap-target`;
const INTEROP_BIN = process.env.DARKSWAP_TEST_E2E_INTEROP ?? `${TARGET_DIR}/debug/examples/e2e_interop`;
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const WAIT_MS = 20_000;

// ── a page that loads the two modules ──

/** The client's ES modules the page may load: the entry points and the modules under src/. */
const MODULE_PATH = /^\/(src\/)?[a-z0-9-]+\.js$/;
const PAGE = `<!doctype html><meta charset="utf-8"><title>e2e interop</title>
<script type="module">
  import * as e2e from './darkswap-e2e.js';
  import { peerIdFromPublicKey } from './darkswap-relay-client.js';
  const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const utf8 = new TextEncoder();
  const fromUtf8 = new TextDecoder();
  let identity, peerId, handshake, session;
  window.interop = {
    async init() {
      identity = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
      peerId = peerIdFromPublicKey(new Uint8Array(await crypto.subtle.exportKey('raw', identity.publicKey)));
      return peerId;
    },
    /** Our signed key for \`remote\` (base64). */
    async offer(remote) {
      handshake = await e2e.E2eHandshake.create({ identity, localPeerId: peerId, remotePeerId: remote });
      return b64(handshake.signedKey);
    },
    /** Accepts the remote's signed key; '' or the error code. */
    async accept(key) {
      try { session = await handshake.accept(unb64(key)); return ''; } catch (error) { return error.code; }
    },
    async encrypt(text) { return b64(await session.encrypt(utf8.encode(text))); },
    /** The plaintext, or { error: code }. */
    async decrypt(frame) {
      try { return fromUtf8.decode(await session.decrypt(unb64(frame))); } catch (error) { return { error: error.code }; }
    },
    rotate() { return session.rotate(); },
    epoch() { return session.epoch; },
  };
  document.title = 'ready';
</script>`;

let httpServer;
let baseUrl;
const tempDirs = [];

before(async () => {
  httpServer = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (MODULE_PATH.test(path) && existsSync(join(CLIENT_DIR, path))) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(readFileSync(join(CLIENT_DIR, path)));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((done) => httpServer.listen(0, '127.0.0.1', done));
  baseUrl = `http://127.0.0.1:${httpServer.address().port}`;
});

after(async () => {
  await new Promise((done) => httpServer?.close(done));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

async function openPage(t) {
  const dir = mkdtempSync(join(tmpdir(), 'dsw-e2e-chromium-'));
  tempDirs.push(dir);
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(() => context.close());
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  t.after(() => assert.deepEqual(errors.map(String), [], 'uncaught errors in the page'));
  await page.goto(`${baseUrl}/`);
  await page.waitForFunction(() => document.title === 'ready', null, { timeout: WAIT_MS });
  return page;
}

// ── the Rust side ──

/**
 * Starts `e2e_interop`; `call(request)` sends one JSON line and resolves with
 * the reply (bounded by WAIT_MS).
 */
async function startRust(t) {
  const child = spawn(INTEROP_BIN, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const stderr = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  const replies = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter(JSON.parse(line)); else replies.push(JSON.parse(line));
  });
  const next = () => new Promise((resolveReply, reject) => {
    if (replies.length > 0) { resolveReply(replies.shift()); return; }
    const timer = setTimeout(() => reject(new Error(`e2e_interop did not answer:\n${stderr.join('\n')}`)), WAIT_MS);
    waiters.push((reply) => { clearTimeout(timer); resolveReply(reply); });
  });
  child.once('error', (error) => { for (const w of waiters.splice(0)) w({ ok: false, error: error.message }); });
  const ready = await next();
  assert.equal(ready.type, 'ready');
  return {
    peerId: ready.peer_id,
    call(request) {
      child.stdin.write(`${JSON.stringify(request)}\n`);
      return next();
    },
  };
}

const b64 = (text) => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text) => Buffer.from(text, 'base64').toString('utf8');
/** `frame` (base64) with one bit of byte `index` (negative: from the end) flipped. */
function flip(frame, index) {
  const bytes = Buffer.from(frame, 'base64');
  bytes[index < 0 ? bytes.length + index : index] ^= 0x01;
  return bytes.toString('base64');
}

async function connect(page, rust) {
  const browserId = await page.evaluate(() => window.interop.init());
  const browserKey = await page.evaluate((remote) => window.interop.offer(remote), rust.peerId);
  const reply = await rust.call({ cmd: 'handshake', peer: browserId, key: browserKey });
  assert.ok(reply.ok, JSON.stringify(reply));
  assert.equal(await page.evaluate((key) => window.interop.accept(key), reply.key), '');
  return browserId;
}

test('Chromium and Rust encrypt for each other and both refuse tampered and replayed frames', { timeout: 90_000 }, async (t) => {
  const [page, rust] = await Promise.all([openPage(t), startRust(t)]);
  await connect(page, rust);

  // Browser → Rust.
  const fromBrowser = await page.evaluate(() => window.interop.encrypt('hello from chromium ✓'));
  const decrypted = await rust.call({ cmd: 'decrypt', frame: fromBrowser });
  assert.deepEqual(decrypted, { ok: true, data: b64('hello from chromium ✓') });
  assert.equal((await rust.call({ cmd: 'decrypt', frame: fromBrowser })).error, 'e2e_replay');
  const tamperedForRust = await page.evaluate(() => window.interop.encrypt('tampered'));
  for (const index of [FRAME_BODY, -1]) {
    assert.equal((await rust.call({ cmd: 'decrypt', frame: flip(tamperedForRust, index) })).error, 'e2e_authentication_failed');
  }
  assert.equal(unb64((await rust.call({ cmd: 'decrypt', frame: tamperedForRust })).data), 'tampered');

  // Rust → browser.
  const fromRust = await rust.call({ cmd: 'encrypt', data: b64('hello from rust') });
  assert.ok(fromRust.ok);
  assert.equal(await page.evaluate((f) => window.interop.decrypt(f), fromRust.frame), 'hello from rust');
  assert.deepEqual(await page.evaluate((f) => window.interop.decrypt(f), fromRust.frame), { error: 'e2e_replay' });
  const tamperedForBrowser = (await rust.call({ cmd: 'encrypt', data: b64('tampered') })).frame;
  for (const index of [FRAME_BODY, -1]) {
    assert.deepEqual(await page.evaluate((f) => window.interop.decrypt(f), flip(tamperedForBrowser, index)),
      { error: 'e2e_authentication_failed' });
  }
  assert.equal(await page.evaluate((f) => window.interop.decrypt(f), tamperedForBrowser), 'tampered');
});

/** First ciphertext byte (after the 14-byte header). */
const FRAME_BODY = 14;

test('key rotation on either side mid-stream: the other follows, in-flight frames still decrypt', { timeout: 90_000 }, async (t) => {
  const [page, rust] = await Promise.all([openPage(t), startRust(t)]);
  await connect(page, rust);

  const inFlight = (await rust.call({ cmd: 'encrypt', data: b64('old epoch') })).frame;
  assert.deepEqual(await rust.call({ cmd: 'rotate' }), { ok: true });
  const newer = (await rust.call({ cmd: 'encrypt', data: b64('new epoch') })).frame;
  assert.equal(Buffer.from(newer, 'base64').readUInt32BE(2), 1);
  assert.equal(await page.evaluate((f) => window.interop.decrypt(f), newer), 'new epoch');
  assert.equal(await page.evaluate((f) => window.interop.decrypt(f), inFlight), 'old epoch');

  const browserOld = await page.evaluate(() => window.interop.encrypt('browser old epoch'));
  await page.evaluate(() => window.interop.rotate());
  assert.equal(await page.evaluate(() => window.interop.epoch()), 1);
  const browserNew = await page.evaluate(() => window.interop.encrypt('browser new epoch'));
  assert.equal(unb64((await rust.call({ cmd: 'decrypt', frame: browserNew })).data), 'browser new epoch');
  assert.equal(unb64((await rust.call({ cmd: 'decrypt', frame: browserOld })).data), 'browser old epoch');
});

test('forged signed keys are refused on both sides; an honest handshake then succeeds', { timeout: 90_000 }, async (t) => {
  const [page, rust] = await Promise.all([openPage(t), startRust(t)]);
  const browserId = await page.evaluate(() => window.interop.init());

  // The browser's key with its signature altered → Rust refuses it.
  const browserKey = await page.evaluate((remote) => window.interop.offer(remote), rust.peerId);
  const refused = await rust.call({ cmd: 'handshake', peer: browserId, key: flip(browserKey, -1) });
  assert.equal(refused.error, 'e2e_bad_signature');
  // A genuine browser key, claimed for another peer id → refused too.
  const other = await rust.call({ cmd: 'handshake', peer: '12D3KooW9tHTtS3inCZiYykw4u5G4frbjVFqhkmJX12gSNCVeH3e', key: browserKey });
  assert.equal(other.error, 'e2e_bad_signature');

  // Rust's key altered on its way → the browser refuses it.
  const reply = await rust.call({ cmd: 'handshake', peer: browserId, key: browserKey });
  assert.ok(reply.ok, JSON.stringify(reply));
  assert.equal(await page.evaluate((key) => window.interop.accept(key), flip(reply.key, 10)), 'e2e_bad_signature');

  // Start over honestly: works.
  await connect(page, rust);
  const frame = await page.evaluate(() => window.interop.encrypt('after the forgeries'));
  assert.equal(unb64((await rust.call({ cmd: 'decrypt', frame })).data), 'after the forgeries');
});
