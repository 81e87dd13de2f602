// What the market page's browser tests run against: the real darkswap-relay
// and darkswap daemon as child processes, the `darkswap` CLI, a static
// server for clients/ (the page and the darkswap-wasm package), and headless
// Chromium pages. Every wait is bounded.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLIENTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? `${process.env.HOME}/.cache/darkswap-target`;
const RELAY_BIN = process.env.DARKSWAP_TEST_RELAY_BIN ?? `${TARGET_DIR}/debug/darkswap-relay`;
const DARKSWAP_BIN = process.env.DARKSWAP_TEST_DARKSWAP_BIN ?? `${TARGET_DIR}/debug/darkswap`;
const CHAIN_BIN = process.env.DARKSWAP_TEST_CHAIN_BIN ?? `${TARGET_DIR}/debug/chain-test-server`;
const FORGE_BIN = process.env.DARKSWAP_TEST_FORGE_BIN ?? `${TARGET_DIR}/debug/forge-order`;
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Lets Chromium gather host candidates in a namespace with no default
  // route. Not --allow-loopback-in-peer-connection: with loopback
  // candidates too, the native side (one ICE ufrag per remote address)
  // refuses the second address and the handshake stalls.
  '--use-fake-ui-for-media-stream',
];
/** Bound of every wait. */
export const WAIT_MS = 20_000;
export const TEST_TIMEOUT_MS = 120_000;
/**
 * The address WebRTC-direct listeners use: a non-loopback one, because the
 * native WebRTC stack (webrtc-rs under libp2p-webrtc) gathers no candidate
 * on loopback. scripts/browser-tests.sh puts it on a dummy interface of the
 * test namespace, so nothing still leaves it.
 */
export const HOST_IP = process.env.DARKSWAP_TEST_HOST_IP ?? '127.0.0.1';
export const BASE = 'BTC';
export const QUOTE = 'rune:1:0';

const tempDirs = [];
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
export function removeTempDirs() {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** The environment minus our binaries' configuration variables. */
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env)
    .filter(([name]) => !name.startsWith('DARKSWAP_RELAY_') && !(name.startsWith('DARKSWAP_') && !name.startsWith('DARKSWAP_TEST_'))));
}

const children = new Set();
process.once('exit', () => { for (const child of children) if (child.exitCode === null) child.kill('SIGKILL'); });

/**
 * Starts `bin` and resolves once `ready(line, log)` returns a value for one
 * of its output lines; rejects after `WAIT_MS` or if it exits first.
 */
function startProcess(bin, args, env, ready, { stdin = 'ignore' } = {}) {
  const child = spawn(bin, args, { stdio: [stdin, 'pipe', 'pipe'], env });
  children.add(child);
  const log = [];
  return new Promise((resolvePromise, reject) => {
    let done = false;
    const timer = setTimeout(() => fail(new Error(`${bin} did not start within ${WAIT_MS} ms`)), WAIT_MS);
    function fail(error) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}\n${log.slice(-30).join('\n')}`));
    }
    function onLine(line) {
      log.push(line);
      if (log.length > 500) log.shift();
      if (done) return;
      const value = ready(line);
      if (value !== undefined) {
        done = true;
        clearTimeout(timer);
        resolvePromise({ child, log, value });
      }
    }
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`${bin} exited (${code ?? signal})`)));
  });
}

async function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** A darkswap-relay on 127.0.0.1: TCP, WebSocket and WebRTC-direct, port 0. */
export class Relay {
  /** @type {string[]} */ addrs = [];
  static async start() {
    const relay = new Relay();
    const dataDir = tempDir('dsw-relay-');
    const { child, log } = await startProcess(RELAY_BIN, [
      '--data-dir', dataDir,
      '--listen', '/ip4/127.0.0.1/tcp/0',
      '--listen', '/ip4/127.0.0.1/tcp/0/ws',
      '--listen', `/ip4/${HOST_IP}/udp/0/webrtc-direct`,
      '--metrics-listen', '127.0.0.1:0',
      '--signaling-listen', '127.0.0.1:0',
      '--log-format', 'json',
    ], cleanEnv(), (line) => {
      let fields;
      try { fields = JSON.parse(line)?.fields ?? {}; } catch { return undefined; }
      if (fields.message === 'listening' && typeof fields.address === 'string') relay.addrs.push(fields.address);
      return fields.message === 'relay started' ? true : undefined;
    });
    relay.child = child;
    relay.log = log;
    return relay;
  }
  /** The listen address whose transport part matches `pattern`. */
  addr(pattern) {
    const found = this.addrs.find((a) => pattern.test(a));
    assert.ok(found, `relay address ${pattern} among ${this.addrs}`);
    return found;
  }
  get peerId() { return this.addrs[0].split('/p2p/')[1]; }
  stop() { return stopProcess(this.child); }
}

/**
 * The test chain (crates/darkswap-chain's chain-test-server) on 127.0.0.1:
 * an Esplora and an ord over the coins a test funds, which checks every
 * transaction posted to it with Bitcoin Core's script interpreter (400
 * otherwise) and records it.
 */
export class Chain {
  static async start() {
    const chain = new Chain();
    const { child, value } = await startProcess(CHAIN_BIN, ['127.0.0.1:0'], cleanEnv(), (line) => {
      try { return JSON.parse(line).base_url; } catch { return undefined; }
    }, { stdin: 'pipe' });
    chain.child = child;
    chain.baseUrl = value;
    return chain;
  }

  /** A new coin of `sat` paying `address`, holding `rune` (`{name, id, amount}`) if given. */
  async fund(address, sat, rune) {
    const response = await fetch(`${this.baseUrl}/test/fund`, {
      method: 'POST', body: JSON.stringify({ address, sat, ...(rune ? { rune } : {}) }), signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()).outpoint;
  }

  /** Every transaction the chain accepted: `[{txid, hex}]`. */
  async transactions() {
    const response = await fetch(`${this.baseUrl}/test/transactions`, { signal: AbortSignal.timeout(WAIT_MS) });
    return response.json();
  }

  stop() { return stopProcess(this.child); }
}

/**
 * A hostile peer (crates/darkswap-testkit's forge-order): raw gossipsub with
 * no validation of its own, on WebRTC-direct so a page dials it directly.
 */
export class Forger {
  static async start() {
    const forger = new Forger();
    const { child, log, value } = await startProcess(FORGE_BIN, [HOST_IP], cleanEnv(), (line) => {
      try { return JSON.parse(line).addr; } catch { return undefined; }
    }, { stdin: 'pipe' });
    Object.assign(forger, { child, log, addr: value, peerId: value.split('/p2p/')[1] });
    return forger;
  }

  /**
   * Publishes one valid order and two forgeries (fresh ones each time)
   * once a peer subscribed to the orderbook topic; resolves to
   * `{valid, forged: [id, id]}`.
   */
  async publish() {
    const from = this.log.length;
    this.child.stdin.write('publish\n');
    return eventually('the forger published', () => this.log.slice(from).map((line) => {
      try { return JSON.parse(line); } catch { return undefined; }
    }).find((v) => v?.valid));
  }

  stop() { return stopProcess(this.child); }
}

/** A `darkswap` daemon on 127.0.0.1: TCP and WebRTC-direct, its API on port 0; trading on against `chain` if given. */
export class Daemon {
  static async start({ relay, chain, dataDir = tempDir('dsw-daemon-') } = {}) {
    const daemon = new Daemon();
    const args = ['--api', '127.0.0.1:0', 'daemon', '--no-mdns', '--data-dir', dataDir,
      '--listen', '/ip4/127.0.0.1/tcp/0', '--listen', `/ip4/${HOST_IP}/udp/0/webrtc-direct`];
    if (relay) args.push('--relay', relay.addr(/\/tcp\/\d+\/p2p\//));
    if (chain) {
      const config = join(dataDir, 'darkswap.toml');
      writeFileSync(config, [
        'trading = true', 'bitcoin_network = "regtest"',
        `esplora_url = "${chain.baseUrl}"`, `ord_url = "${chain.baseUrl}"`,
        '# Synced by the test through the CLI.', 'wallet_sync_interval = "1h"', '',
      ].join('\n'));
      args.push('--config', config);
    }
    const { child, log, value } = await startProcess(DARKSWAP_BIN, args, { ...cleanEnv(), RUST_LOG: process.env.RUST_LOG ?? 'info', NO_COLOR: '1' },
      (line) => (line.includes('daemon started') ? /api=([\d.:]+)/.exec(line)?.[1] : undefined));
    daemon.child = child;
    daemon.log = log;
    daemon.api = value;
    daemon.dataDir = dataDir;
    const status = await daemon.cli(['status']);
    daemon.peerId = status.peer_id;
    daemon.listenAddrs = status.listen_addrs;
    return daemon;
  }

  /** Runs `darkswap --api <api> ...args` and parses its JSON output. */
  cli(args) {
    return new Promise((resolveCli, reject) => {
      execFile(DARKSWAP_BIN, ['--api', this.api, '--json', ...args], { timeout: WAIT_MS, env: cleanEnv() }, (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`darkswap ${args.join(' ')}: ${error.message}\n${stderr}`));
          return;
        }
        try { resolveCli(stdout.trim() ? JSON.parse(stdout) : null); } catch (e) { reject(new Error(`darkswap ${args.join(' ')}: ${e.message}: ${stdout}`)); }
      });
    });
  }

  /** Its WebRTC-direct address, with the certificate hash and peer id. */
  get webrtcAddr() {
    const found = this.listenAddrs.find((a) => a.includes('/webrtc-direct/') && !a.includes('/p2p-circuit'));
    assert.ok(found, `a webrtc-direct listen address among ${this.listenAddrs}`);
    return found.includes('/p2p/') ? found : `${found}/p2p/${this.peerId}`;
  }

  /** The daemon's book of the test pair. */
  book() { return this.cli(['orderbook', '--base', BASE, '--quote', QUOTE]); }

  stop() { return stopProcess(this.child); }
}

/** Polls `probe` every 100 ms until it returns a truthy value, for at most `ms`. */
export async function eventually(what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/** Serves clients/ (the page under /web, the package under /wasm) on 127.0.0.1. */
export function startStaticServer() {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = resolve(CLIENTS_DIR, `.${path}`);
    let ok = file.startsWith(CLIENTS_DIR + sep) && !file.includes(`${sep}node_modules${sep}`);
    try { ok &&= statSync(file).isFile(); } catch { ok = false; }
    if (!ok) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done({
    baseUrl: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((closed) => server.close(() => closed())),
  })));
}

/**
 * Opens the market page in a browser profile of its own (`profile`: reuse
 * one to keep its IndexedDB) and waits until its node is online.
 */
export async function openMarket(t, { baseUrl, relay, peers = [], profile = tempDir('dsw-chromium-'), base = BASE, quote = QUOTE, chain }) {
  const { chromium } = await import('playwright-core');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
  });
  t.after(() => context.close());
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  const consoleLines = [];
  page.on('pageerror', (error) => {
    // rust-libp2p#6551 (fix in PR #6558, not released): libp2p-webrtc-websys
    // frees a data channel's event closures with its stream, and Chromium
    // may still deliver an event queued before; wasm-bindgen throws this
    // from the RTCDataChannel handler. The stream is over by then, nothing
    // is lost. Exactly this error is tolerated, any other fails the test.
    const stack = error.stack ?? String(error);
    if (/closure invoked recursively or after being dropped/.test(stack) && /RTCDataChannel/.test(stack)) return;
    errors.push(stack);
  });
  page.on('console', (message) => consoleLines.push(message.text()));
  t.after(() => assert.deepEqual(errors, [], 'uncaught errors in the page'));
  const params = new URLSearchParams({ base, quote });
  if (chain) { params.set('esplora', chain.baseUrl); params.set('ord', chain.baseUrl); }
  if (relay) params.append('relay', relay);
  if (process.env.DARKSWAP_TEST_PAGE_LOG) params.set('log', process.env.DARKSWAP_TEST_PAGE_LOG);
  for (const peer of peers) params.append('peer', peer);
  await page.goto(`${baseUrl}/web/index.html?${params}`);
  const peerId = await online(page, consoleLines);
  return { context, page, peerId, console: consoleLines };
}

/** Waits for the page's node to be online; returns its peer id. */
export async function online(page, consoleLines = []) {
  try {
    await page.waitForFunction(() => document.querySelector('[data-testid="status"]')?.textContent === 'online', null, { timeout: WAIT_MS });
  } catch (error) {
    const status = await page.locator('[data-testid="status"]').textContent();
    throw new Error(`page not online (${status}): ${error.message}\n${consoleLines.slice(-20).join('\n')}`);
  }
  const peerId = await page.locator('[data-testid="peer-id"]').textContent();
  assert.match(peerId ?? '', /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/);
  return /** @type {string} */ (peerId);
}

/** The selector of the book row of order `id`. */
export const row = (id) => `tbody [data-order="${id}"]`;
