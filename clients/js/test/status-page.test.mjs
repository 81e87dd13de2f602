// The relay's status page (/status on the admin port) in headless Chromium:
// the numbers and charts move as peers register and bytes cross a relayed
// circuit. Run like the other browser tests (see browser.test.mjs), e.g. with
// --test-name-pattern='status page'. A screenshot is saved to
// $DARKSWAP_SCREENSHOT_DIR (default: a new temporary directory) and its path printed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CHROMIUM, Relay, TEST_TIMEOUT_MS, WAIT_MS, chat, openPage, removeTempDirs, startStaticServer, waitForPeer, waitPath,
} from './harness.mjs';

/** @type {Relay} */
let relay;
/** @type {{ baseUrl: string, close: () => Promise<void> }} */
let files;

before(async () => {
  files = await startStaticServer();
  relay = await Relay.start();
});

after(async () => {
  await relay?.stop();
  await files?.close();
  removeTempDirs();
});

/** Waits until `predicate(document.documentElement.dataset)` holds on the status page. */
async function waitStatus(page, what, predicate) {
  try {
    await page.waitForFunction(predicate, undefined, { timeout: WAIT_MS, polling: 100 });
  } catch (error) {
    const data = await page.evaluate(() => ({ ...document.documentElement.dataset }));
    throw new Error(`status page: ${what}; page data: ${JSON.stringify(data)}\n${error.message}`);
  }
}

test('the status page shows peers, relayed bytes and charts that move live', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  assert.ok(relay.adminAddr, 'the relay logged its admin address');
  const base = `http://${relay.adminAddr}`;

  // The endpoints the page reads, and the ones it must leave as they were.
  const json = await (await fetch(`${base}/status.json`)).json();
  assert.equal(json.status, 'ok');
  assert.match(json.peer_id, /^12D3KooW/);
  assert.equal(typeof json.version, 'string');
  assert.deepEqual(json.peers.signaling.active, 0);
  assert.ok(json.reservations.max > 0 && json.circuits.libp2p.max > 0 && json.circuits.websocket.max > 0);
  assert.ok(Array.isArray(json.refusals));
  assert.match(await (await fetch(`${base}/metrics`)).text(), /darkswap_relay_signaling_peers 0/);
  assert.equal((await (await fetch(`${base}/health`)).json()).status, 'ok');

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  // Anything but the admin port (a CDN, a font) would be a request elsewhere.
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });

  const response = await page.goto(`${base}/status`);
  assert.equal(response?.status(), 200);
  assert.equal(response?.headers()['content-security-policy'], "default-src 'self'");

  await waitStatus(page, 'first snapshot', () => document.documentElement.dataset.signalingPeers === '0'
    && Number(document.documentElement.dataset.points) >= 1);
  assert.equal(await page.locator('[data-testid="signaling-peers"]').textContent(), '0');
  assert.equal(await page.locator('[data-testid="peer-id"]').textContent(), json.peer_id);
  assert.equal(await page.locator('[data-testid="health"]').textContent(), 'ok');

  // Traffic: two example pages register, one of them cannot use WebRTC, so
  // they talk through a relayed WebSocket circuit.
  const signalingUrl = relay.signalingUrl;
  const a = await openPage(t, { baseUrl: files.baseUrl, signalingUrl, query: { iceTimeout: '2000' } });
  const b = await openPage(t, { baseUrl: files.baseUrl, signalingUrl, query: { iceTimeout: '2000', policy: 'relay' } });
  await waitForPeer(a.page, b.peerId);
  await waitForPeer(b.page, a.peerId);
  await a.page.locator(`[data-testid="peer-list"] li[data-peer="${b.peerId}"] [data-testid="connect"]`).click();
  await waitPath(a.page, b.peerId, 'relayed');
  await chat(a, b, 'bytes for the status page');
  await chat(b, a, 'and back');

  await waitStatus(page, 'two peers, one circuit, bytes relayed, a rate above 0', () => {
    const d = document.documentElement.dataset;
    return d.signalingPeers === '2' && d.wsCircuits === '1' && Number(d.bytesTotal) > 0 && Number(d.maxRate) > 0;
  });
  assert.equal(await page.locator('[data-testid="signaling-peers"]').textContent(), '2');
  assert.equal(await page.locator('[data-testid="ws-circuits"]').textContent(), '1');
  assert.notEqual(await page.locator('[data-testid="bytes-total"]').textContent(), '0 B');

  // Every chart has a line with a point per poll so far (at least 3 by now:
  // before the pages, with them, after the bytes).
  for (const chart of ['chart-peers', 'chart-circuits', 'chart-bandwidth']) {
    const points = await page.locator(`[data-testid="${chart}"] polyline`).first().getAttribute('points');
    assert.ok((points ?? '').trim().split(' ').length >= 3, `${chart}: ${points}`);
  }
  // The peers line rose: its last point is higher on screen (smaller y) than its first.
  const ys = (await page.locator('[data-testid="chart-peers"] polyline').first().getAttribute('points') ?? '')
    .trim().split(' ').map((p) => Number(p.split(',')[1]));
  assert.ok(ys.at(-1) < ys[0], `peers line ${ys}`);

  const dir = process.env.DARKSWAP_SCREENSHOT_DIR ?? mkdtempSync(join(tmpdir(), 'dsw-status-'));
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'relay-status-page.png');
  await page.screenshot({ path, fullPage: true });
  console.log(`status page screenshot: ${path}`);

  assert.deepEqual(problems, [], 'errors in the status page (CSP violations included)');
  assert.deepEqual(foreign, [], 'requests outside the admin port');
});
