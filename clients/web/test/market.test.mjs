// The market page against the real relay and daemon, in headless Chromium,
// inside a loopback-only network namespace (scripts/browser-tests.sh): the
// page's node joins the market over the relay's WebSocket and dials the
// daemon's WebRTC-direct listener; orders and cancels cross both ways.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  BASE, Daemon, Forger, QUOTE, Relay, TEST_TIMEOUT_MS, WAIT_MS, eventually, online, openMarket, removeTempDirs,
  row, startStaticServer, tempDir,
} from './harness.mjs';

describe('market page', { timeout: TEST_TIMEOUT_MS * 4 }, () => {
  /** @type {Relay} */ let relay;
  /** @type {Daemon} */ let daemon;
  /** @type {{ baseUrl: string, close: () => Promise<void> }} */ let server;

  before(async () => {
    server = await startStaticServer();
    relay = await Relay.start();
    daemon = await Daemon.start({ relay });
  });
  after(async () => {
    await daemon?.stop();
    await relay?.stop();
    await server?.close();
    removeTempDirs();
  });

  const open = (t, options = {}) => openMarket(t, {
    baseUrl: server.baseUrl,
    relay: relay.addr(/\/ws\/p2p\//),
    peers: [daemon.webrtcAddr],
    ...options,
  });

  test('the page reaches the daemon directly over WebRTC-direct', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { page } = await open(t);
    const peer = page.locator(`[data-testid="peer-list"] li[data-peer="${daemon.peerId}"]`);
    await peer.waitFor({ timeout: WAIT_MS });
    assert.equal(await peer.getAttribute('data-path'), 'direct');
    const peers = await daemon.cli(['peers']);
    const seen = peers.find((p) => p.address.includes('/webrtc-direct'));
    assert.ok(seen, `the daemon sees the page over webrtc-direct: ${JSON.stringify(peers)}`);
  });

  test('an order made with the CLI shows in the page within a second, and its cancel too', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { page } = await open(t);
    await page.locator(`[data-testid="peer-list"] li[data-peer="${daemon.peerId}"]`).waitFor({ timeout: WAIT_MS });
    // A first order shows once the page is in the daemon's gossip mesh (a
    // heartbeat after it joined: until then orders reach it by gossip or
    // sync, later); from then on every order is pushed at once.
    const first = await daemon.cli(['order', 'create', '--side', 'sell', '--base', BASE, '--quote', QUOTE,
      '--amount', '1', '--price', '54321', '--expires-in', '10m']);
    await page.locator(row(first.id)).waitFor({ timeout: WAIT_MS });
    const order = await daemon.cli(['order', 'create', '--side', 'sell', '--base', BASE, '--quote', QUOTE,
      '--amount', '700', '--price', '12345', '--expires-in', '10m']);
    // The deadline is the feature: a market page that lags is one a trader
    // cannot use.
    await page.locator(row(order.id)).waitFor({ timeout: 1_000 });
    const cells = await page.locator(`${row(order.id)} td`).allTextContents();
    assert.deepEqual(cells.slice(0, 2), ['12345', '700']);

    await daemon.cli(['order', 'cancel', order.id]);
    await page.locator(row(order.id)).waitFor({ state: 'detached', timeout: WAIT_MS });
    await daemon.cli(['order', 'cancel', first.id]);
  });

  test('an order made in the page reaches the daemon, and so does its cancel', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { page, peerId } = await open(t);
    await page.locator(`[data-testid="peer-list"] li[data-peer="${daemon.peerId}"]`).waitFor({ timeout: WAIT_MS });
    const form = page.locator('[data-testid="order-form"]');
    await form.locator('select[name="side"]').selectOption('buy');
    await form.locator('input[name="amount"]').fill('4242');
    await form.locator('input[name="price"]').fill('777');
    await form.locator('button[type="submit"]').click();
    const mine = page.locator('[data-testid="own-orders"] li');
    await mine.first().waitFor({ timeout: WAIT_MS });
    const id = await mine.first().getAttribute('data-order');
    assert.match(id ?? '', /^[0-9a-f]{64}$/);

    const book = await eventually('the page\'s order in the daemon\'s book', async () => {
      const b = await daemon.book();
      return b.bids.some((o) => o.id === id) ? b : null;
    });
    const bid = book.bids.find((o) => o.id === id);
    assert.equal(bid.maker, peerId);
    assert.equal(bid.amount, 4242);
    assert.equal(bid.price, 777);

    await page.locator(`[data-testid="own-orders"] button[data-cancel="${id}"]`).click();
    await eventually('the cancel in the daemon\'s book', async () => {
      const b = await daemon.book();
      return !b.bids.some((o) => o.id === id);
    });
    await page.locator(row(id)).waitFor({ state: 'detached', timeout: WAIT_MS });
  });

  test('a reload keeps the peer id, and the book is back at once', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const profile = tempDir('dsw-chromium-');
    const { page, peerId, console: lines } = await open(t, { profile });
    const order = await daemon.cli(['order', 'create', '--side', 'buy', '--base', BASE, '--quote', QUOTE,
      '--amount', '11', '--price', '99', '--expires-in', '10m']);
    await page.locator(row(order.id)).waitFor({ timeout: WAIT_MS });
    await page.reload();
    assert.equal(await online(page, lines), peerId, 'the identity key is kept in IndexedDB');
    // Synced from the daemon on join, not waited for until its next refresh.
    await page.locator(row(order.id)).waitFor({ timeout: WAIT_MS });

    // The screenshot shows the rows: each one lies inside it, with a size.
    const book = page.locator('.book');
    const shot = await book.screenshot({ path: `${tempDir('dsw-shot-')}/market.png` });
    assert.ok(shot.length > 1000, 'a real PNG');
    const box = await book.boundingBox();
    const rowBox = await page.locator(row(order.id)).boundingBox();
    assert.ok(box && rowBox && rowBox.height > 0
      && rowBox.y >= box.y && rowBox.y + rowBox.height <= box.y + box.height, 'the row is in the screenshot');
    await daemon.cli(['order', 'cancel', order.id]);
  });

  test('forged orders from a peer the page dials directly never show in it', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const forger = await Forger.start();
    t.after(() => forger.stop());
    const pair = { base: 'rune:840000:3', quote: 'BTC' };
    const { page } = await open(t, { peers: [forger.addr], ...pair });
    await page.locator(`[data-testid="peer-list"] li[data-peer="${forger.peerId}"]`).waitFor({ timeout: WAIT_MS });
    await page.evaluate(() => {
      globalThis.seen = [];
      globalThis.darkswapMarket.node.on('*', (event) => globalThis.seen.push(event));
    });
    // A batch (one valid order, two forgeries) at a time until the valid
    // one shows: what the forger publishes before its own stream to the
    // page is open can expire in its queue (libp2p-webrtc opens a native
    // node's first stream to a browser late), like any gossip then.
    const batches = [];
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      batches.push(await forger.publish());
      const shown = await page.locator(row(batches.at(-1).valid)).waitFor({ timeout: 2_000 }).then(() => true, () => false);
      if (shown) break;
      assert.ok(Date.now() < deadline, 'no valid order from the forger shown');
    }
    // The page's own validation judged that batch's forgeries, at least.
    await page.waitForFunction((peer) => globalThis.seen
      .filter((e) => e.type === 'invalid_message' && e.peer_id === peer).length >= 2, forger.peerId, { timeout: WAIT_MS });
    const forged = batches.flatMap((b) => b.forged);
    for (const id of forged) assert.equal(await page.locator(row(id)).count(), 0, `forged order ${id} shown`);
    const book = await page.evaluate(({ base, quote }) => globalThis.darkswapMarket.node.orderbook(base, quote), pair);
    const listed = [...book.bids, ...book.asks].map((o) => o.id);
    assert.ok(listed.includes(batches.at(-1).valid));
    for (const id of forged) assert.ok(!listed.includes(id), `forged order ${id} in the book`);
  });
});
