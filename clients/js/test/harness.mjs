// Shared parts of the browser tests: the real darkswap-relay as a child
// process, a static file server for the example page, headless Chromium
// pages, and bounded waits on what a page shows.
//
// What Chromium needs for WebRTC between two pages on loopback (measured with
// Chromium 156 in a network namespace whose only interface is `lo`, pages served
// from http://127.0.0.1, `iceServers: []`):
//
// - `--allow-loopback-in-peer-connection` AND `--use-fake-ui-for-media-stream`
//   together: each page gathers plain host candidates `127.0.0.1 <port> typ host`
//   (udp, plus a `tcptype active` one) and the data channel opens in a few ms.
// - Either flag alone, or neither: not a single candidate is gathered, ICE
//   gathering never completes, nothing connects. Disabling mDNS host-name
//   obfuscation (`--disable-features=WebRtcHideLocalIpsWithMdns`) or forcing
//   `--force-webrtc-ip-handling-policy=default` instead of the fake-UI flag does
//   not help either.
// - No getUserMedia() call is needed: with the fake-UI flag the page counts as
//   having media permission, which is what makes Chromium enumerate (loopback)
//   interfaces instead of only the default-route one (there is no default route
//   in the namespace). Calling getUserMedia({audio: true}) without
//   `--use-fake-device-for-media-stream` fails with NotFoundError (no device) and
//   changes nothing; without the fake-UI flag it is denied and changes nothing.
//   So the client has no "request media permission" option.
// - `iceTransportPolicy: 'relay'` with no TURN server gathers no candidate at all,
//   which is how `policy=relay` forces the relayed path.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const CLIENT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? `${process.env.HOME}/.cache/darkswap-target`;
export const RELAY_BIN = process.env.DARKSWAP_TEST_RELAY_BIN ?? `${TARGET_DIR}/debug/darkswap-relay`;
export const WEBRTC_EXAMPLE = process.env.DARKSWAP_TEST_WEBRTC_EXAMPLE ?? `${TARGET_DIR}/debug/examples/webrtc_example`;
export const NETWORK_EXAMPLE = process.env.DARKSWAP_TEST_NETWORK_EXAMPLE ?? `${TARGET_DIR}/debug/examples/webrtc_network`;
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream',
];
/** Bound of every wait on a page. */
export const WAIT_MS = 20_000;
export const TEST_TIMEOUT_MS = 90_000;

const tempDirs = [];
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs() {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * The environment for our binaries: the relay reads `DARKSWAP_RELAY_<SECTION>__<KEY>`
 * variables as configuration and refuses unknown ones, so none leak in from
 * this shell; a test sets the ones it means.
 * @param {Record<string, string>} [overrides]
 */
export function relayEnv(overrides = {}) {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('DARKSWAP_RELAY_'));
  return { ...Object.fromEntries(inherited), ...overrides };
}

/** A darkswap-relay process on 127.0.0.1 port 0. */
export class Relay {
  /** @type {import('node:child_process').ChildProcess} */ child;
  /** `host:port` of the signaling (WebSocket and /auth) listener. */ addr;
  /** `host:port` of the admin HTTP server (/metrics, /health, /status). */ adminAddr;
  dataDir;
  /** Last lines of the relay's log, shown when something fails. */ log = [];

  get signalingUrl() { return `ws://${this.addr}/signaling`; }
  get httpUrl() { return `http://${this.addr}`; }

  /**
   * @param {{ env?: Record<string, string>, port?: number, dataDir?: string, host?: string }} [options] configuration
   *   overrides (`DARKSWAP_RELAY_AUTH__ANONYMOUS_ROLE: 'guest'`, ...); the public port (default: any);
   *   the data directory (default: a new one), e.g. a stopped relay's to restart it as the same peer;
   *   the address of the public port (default 127.0.0.1)
   * @returns {Promise<Relay>}
   */
  static start({ env = {}, port = 0, dataDir, host = '127.0.0.1' } = {}) {
    const relay = new Relay();
    relay.dataDir = dataDir ?? tempDir('dsw-relay-');
    const child = spawn(RELAY_BIN, [
      '--data-dir', relay.dataDir,
      '--listen', '/ip4/127.0.0.1/tcp/0',
      '--metrics-listen', '127.0.0.1:0',
      '--signaling-listen', `${host}:${port}`,
      '--log-format', 'json',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: relayEnv(env) });
    relay.child = child;
    return new Promise((resolvePromise, reject) => {
      let addr = null;
      let started = false;
      const timer = setTimeout(() => fail(new Error('relay did not start within 30 s')), 30_000);
      function fail(error) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`${error.message}\n${relay.log.slice(-30).join('\n')}`));
      }
      function onLine(line) {
        relay.log.push(line);
        if (relay.log.length > 500) relay.log.shift();
        let entry;
        try { entry = JSON.parse(line); } catch { return; }
        const fields = entry?.fields ?? {};
        if (fields.message === 'signaling server listening' && typeof fields.addr === 'string') {
          addr = fields.addr.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
        }
        if (fields.message === 'metrics server listening' && typeof fields.addr === 'string') relay.adminAddr = fields.addr;
        if (fields.message === 'relay started') started = true;
        if (addr && started && timer) {
          clearTimeout(timer);
          relay.addr = addr;
          resolvePromise(relay);
        }
      }
      // Never leave a relay behind, even if this process dies without cleaning up.
      process.once('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
      createInterface({ input: child.stdout }).on('line', onLine);
      createInterface({ input: child.stderr }).on('line', onLine);
      child.once('error', fail);
      child.once('exit', (code, signal) => { if (!started) fail(new Error(`relay exited (${code ?? signal})`)); });
    });
  }

  /**
   * Runs `darkswap-relay token issue` on this relay's data directory (its key):
   * a token minted offline.
   * @param {string} peerId
   * @param {'guest' | 'user' | 'admin'} role
   * @returns {Promise<string>}
   */
  issueToken(peerId, role) {
    const child = spawn(RELAY_BIN, ['--data-dir', this.dataDir, 'token', 'issue', '--peer', peerId, '--role', role, '--ttl', '10m'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: relayEnv() });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => { out += chunk; });
    child.stderr.on('data', (chunk) => { err += chunk; });
    return new Promise((resolveToken, reject) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('token issue took over 30 s')); }, 30_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (code === 0 && out.trim()) resolveToken(out.trim().split('\n')[0]);
        else reject(new Error(`token issue exited with ${code}: ${err}`));
      });
    });
  }

  async stop() {
    const { child } = this;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

// ── static files ──

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
};

/**
 * Serves the client directory on 127.0.0.1 port 0.
 * @returns {Promise<{ baseUrl: string, close: () => Promise<void> }>}
 */
/** @param {string} [host] the address to serve on, and to name in `baseUrl` */
export function startStaticServer(host = '127.0.0.1') {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = resolve(CLIENT_DIR, `.${path}`);
    let ok = file.startsWith(CLIENT_DIR + sep) && !file.includes(`${sep}node_modules${sep}`);
    try { ok &&= statSync(file).isFile(); } catch { ok = false; }
    if (!ok) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  return new Promise((done) => server.listen(0, host, () => done({
    baseUrl: `http://${host}:${server.address().port}`,
    close: () => new Promise((closed) => server.close(() => closed())),
  })));
}

// ── pages ──

/**
 * Opens example.html in its own browser context (own profile, own IndexedDB).
 * Every console line of the page is kept in `console`, the path of every
 * WebSocket it opens in `sockets`.
 * @param {import('node:test').TestContext} t
 * @param {{ baseUrl: string, signalingUrl: string, query?: Record<string, string>, register?: boolean,
 *   executablePath?: string, extraArgs?: string[] }} options
 *   `register: false` returns without waiting for the page to register; `executablePath` and
 *   `extraArgs` change how Chromium is started (e.g. inside another network namespace).
 */
export async function openPage(t, { baseUrl, signalingUrl, query = {}, register = true, executablePath = CHROMIUM, extraArgs = [], env = undefined }) {
  // Imported here so that tests without a browser do not need playwright.
  const { chromium } = await import('playwright-core');
  const context = await chromium.launchPersistentContext(tempDir('dsw-chromium-'), {
    executablePath, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], env,
  });
  t.after(() => context.close());
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  const consoleLines = [];
  page.on('pageerror', (error) => errors.push(error));
  page.on('console', (message) => consoleLines.push(message.text()));
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(new URL(ws.url()).pathname));
  t.after(() => assert.deepEqual(errors.map(String), [], 'uncaught errors in the page'));
  const params = new URLSearchParams({ signaling: signalingUrl, ...query });
  await page.goto(`${baseUrl}/example.html?${params}`);
  const peerId = register ? await registeredPeerId(page) : null;
  return { context, page, peerId, console: consoleLines, sockets };
}

/** Waits for the page to be registered and returns its peer id. */
export async function registeredPeerId(page) {
  await waitText(page, '[data-testid="signaling-state"]', 'open');
  const peerId = await page.locator('[data-testid="my-peer-id"]').textContent();
  assert.match(peerId ?? '', /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/);
  return /** @type {string} */ (peerId);
}

/** Waits until the element matching `selector` has exactly `text` as its text. */
export async function waitText(page, selector, text) {
  try {
    await page.waitForFunction(
      ([sel, expected]) => document.querySelector(sel)?.textContent === expected,
      [selector, text], { timeout: WAIT_MS, polling: 50 },
    );
  } catch (error) {
    const actual = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => '<absent>');
    throw new Error(`${selector}: expected "${text}", got "${actual}"\n${error.message}`);
  }
}

export const peerSelector = (peerId, testId) => `[data-testid="peer-list"] li[data-peer="${peerId}"] [data-testid="${testId}"]`;

/**
 * Waits until `peerId` is in the page's peer list. The relay announces a peer
 * only to its watchers, so the page is asked to refresh its list first (as a
 * user would click "Refresh"); tests call this once `peerId` is registered.
 */
export async function waitForPeer(page, peerId) {
  await page.locator('[data-testid="refresh-peers"]').click({ timeout: WAIT_MS });
  await page.locator(`[data-testid="peer-list"] li[data-peer="${peerId}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
}

export async function waitPath(page, peerId, path) {
  await waitText(page, peerSelector(peerId, 'path'), path);
}

/** Waits until the RTT of the connection with `peerId` is shown as a number of ms. */
export async function waitRtt(page, peerId) {
  await page.waitForFunction(
    (sel) => /^\d+(\.\d+)? ms$/.test(document.querySelector(sel)?.textContent ?? ''),
    peerSelector(peerId, 'rtt'), { timeout: WAIT_MS, polling: 100 },
  );
}

/** Sends `text` from `from` to `to` through the chat form and waits for `to` to show it. */
export async function chat(from, to, text) {
  await from.page.locator('[data-testid="chat-target"]').selectOption(to.peerId, { timeout: WAIT_MS });
  await from.page.locator('[data-testid="chat-input"]').fill(text);
  await from.page.locator('[data-testid="chat-send"]').click();
  await to.page.locator(`[data-testid="chat-log"] [data-from="${from.peerId}"]`, { hasText: text })
    .waitFor({ state: 'visible', timeout: WAIT_MS });
  const received = await to.page.locator(`[data-testid="chat-log"] [data-from="${from.peerId}"]`).allTextContents();
  assert.equal(received.at(-1), text);
}

/** Path of the page's connection with `peerId`, as the API reports it. */
export function apiPath(page, peerId) {
  return page.evaluate((id) => {
    const conn = window.darkswap.getConnection(id);
    return conn ? `${conn.state}/${conn.path}` : 'none';
  }, peerId);
}

/** Connects `from` to `to` through the API; resolves with 'open/<path>' or the error code. */
export function connectResult(from, to) {
  return from.page.evaluate((id) => window.darkswap.connect(id).then((c) => `open/${c.path}`, (e) => e.code), to.peerId);
}
