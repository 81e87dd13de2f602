// Trades from the market page, in headless Chromium against real processes:
// the relay, a trading daemon, and the test chain (an Esplora and an ord
// that checks every broadcast transaction with Bitcoin Core's script
// interpreter, refusing it otherwise). Every wallet is funded on that chain;
// a trade is complete when both sides say so and the chain took the swap.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  Chain, Daemon, Relay, TEST_TIMEOUT_MS, WAIT_MS, eventually, openMarket, removeTempDirs, row,
  startStaticServer,
} from './harness.mjs';

const RUNE = 'rune:840000:3';
const BTC = 'BTC';
/** 1,000 of the rune on a 10,000 sat coin, as ord would show it. */
const RUNE_COIN = { name: 'DARKSWAP•TEST•RUNE', id: '840000:3', amount: '1000' };
/** 50 sat per rune unit: quote units per 10^8 base units. */
const PRICE = '5000000000';

/** The trade `id` in the page once it reached `state`. */
async function pageTrade(page, state, timeout = WAIT_MS) {
  const li = page.locator(`[data-testid="trade-list"] li[data-state="${state}"]`);
  try {
    await li.first().waitFor({ timeout });
  } catch (error) {
    const trades = await page.locator('[data-testid="trade-list"]').textContent();
    throw new Error(`no ${state} trade in the page: ${trades}: ${error.message}`);
  }
  return li.first().getAttribute('data-trade');
}

/** The page's receiving address, once its wallet is up. */
async function pageAddress(page) {
  const address = page.locator('[data-testid="wallet-address"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="wallet-address"]')?.textContent?.startsWith('bcrt1'), null, { timeout: WAIT_MS });
  return address.textContent();
}

/** Syncs the page's wallet until its balances read `text`. */
async function pageBalances(page, text) {
  await page.locator('[data-testid="sync-wallet"]').click();
  await page.waitForFunction((want) => document.querySelector('[data-testid="balances"]')?.textContent === want, text, { timeout: WAIT_MS });
}

/** The page's wallet as its node reports it. */
const pageWallet = (page) => page.evaluate(() => globalThis.darkswapMarket.node.wallet());

describe('trades from the market page', { timeout: TEST_TIMEOUT_MS * 4 }, () => {
  /** @type {Chain} */ let chain;
  /** @type {Relay} */ let relay;
  /** @type {Daemon} */ let daemon;
  /** @type {{ baseUrl: string, close: () => Promise<void> }} */ let server;
  let daemonAddress = '';

  before(async () => {
    server = await startStaticServer();
    chain = await Chain.start();
    relay = await Relay.start();
    daemon = await Daemon.start({ relay, chain });
    daemonAddress = (await daemon.cli(['wallet'])).addresses[0];
  });
  after(async () => {
    await daemon?.stop();
    await relay?.stop();
    await chain?.stop();
    await server?.close();
    removeTempDirs();
  });

  const open = (t, options = {}) => openMarket(t, {
    baseUrl: server.baseUrl, base: RUNE, quote: BTC, chain, ...options,
  });

  /** Waits for the daemon's trade `id` to reach `state`; returns it. */
  const daemonTrade = (id, state) => eventually(`the daemon's trade ${id} ${state}`, async () => {
    const trade = await daemon.cli(['trade', 'show', id]);
    return trade.state === state ? trade : undefined;
  });

  test('the page takes a daemon\'s order and the swap is broadcast', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await chain.fund(daemonAddress, 10_000, RUNE_COIN);
    await chain.fund(daemonAddress, 20_000);
    await daemon.cli(['wallet', '--sync']);
    const { page } = await open(t, { peers: [daemon.webrtcAddr] });
    const address = await pageAddress(page);
    await chain.fund(address, 100_000);
    await chain.fund(address, 100_000);
    await pageBalances(page, '200000 sat');
    await page.locator(`[data-testid="peer-list"] li[data-peer="${daemon.peerId}"]`).waitFor({ timeout: WAIT_MS });

    const order = await daemon.cli(['order', 'create', '--side', 'sell', '--base', RUNE, '--quote', BTC,
      '--amount', '1000', '--price', PRICE, '--expires-in', '10m']);
    await page.locator(row(order.id)).waitFor({ timeout: WAIT_MS });
    await page.locator(`[data-take-amount="${order.id}"]`).fill('500');
    await page.locator(`[data-take="${order.id}"]`).click();

    const id = await pageTrade(page, 'completed');
    const trade = await daemonTrade(id, 'completed');
    assert.equal(trade.role, 'maker');
    assert.equal(trade.peer_id, await page.evaluate(() => globalThis.darkswapMarket.node.peerId));
    // The chain took it: every input passed Core's script interpreter.
    const txs = await chain.transactions();
    assert.ok(txs.some((tx) => tx.txid === trade.txid), `swap ${trade.txid} among ${JSON.stringify(txs.map((x) => x.txid))}`);
    // The page's wallet now holds the swap's outputs to it (the runes'
    // postage and its change) instead of the coins it spent.
    const wallet = await eventually('the page wallet synced past the swap', async () => {
      const w = await pageWallet(page);
      return w.coins.some((c) => c.outpoint.startsWith(`${trade.txid}:`)) ? w : undefined;
    });
    assert.ok(wallet.coins.length >= 1);
    // The order's rest stays in the book, in the page too.
    await page.waitForFunction((id) => document.querySelector(`tbody [data-order="${id}"] td:nth-child(2)`)?.textContent === '500', order.id, { timeout: WAIT_MS });
    await daemon.cli(['order', 'cancel', order.id]);
  });

  test('a daemon takes the page\'s order and the swap is broadcast', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await chain.fund(daemonAddress, 100_000);
    await chain.fund(daemonAddress, 100_000);
    await daemon.cli(['wallet', '--sync']);
    const { page, peerId } = await open(t, { peers: [daemon.webrtcAddr] });
    const address = await pageAddress(page);
    await chain.fund(address, 10_000, RUNE_COIN);
    await chain.fund(address, 20_000);
    await pageBalances(page, `30000 sat · 1000 ${RUNE}`);
    await page.locator(`[data-testid="peer-list"] li[data-peer="${daemon.peerId}"]`).waitFor({ timeout: WAIT_MS });

    const form = page.locator('[data-testid="order-form"]');
    await form.locator('select[name="side"]').selectOption('sell');
    await form.locator('input[name="amount"]').fill('1000');
    await form.locator('input[name="price"]').fill(PRICE);
    await form.locator('button[type="submit"]').click();
    const mine = page.locator('[data-testid="own-orders"] li');
    await mine.first().waitFor({ timeout: WAIT_MS });
    const orderId = await mine.first().getAttribute('data-order');
    await eventually('the page\'s order in the daemon\'s book', async () => {
      const book = await daemon.cli(['orderbook', '--base', RUNE, '--quote', BTC]);
      return book.asks.some((o) => o.id === orderId && o.maker === peerId);
    });

    const taken = await daemon.cli(['trade', 'take', orderId, '--amount', '400']);
    const trade = await daemonTrade(taken.id, 'completed');
    assert.equal(trade.role, 'taker');
    assert.equal(await pageTrade(page, 'completed'), taken.id);
    const txs = await chain.transactions();
    assert.ok(txs.some((tx) => tx.txid === trade.txid), `swap ${trade.txid} accepted by the chain`);
    // The page filled 400 of its 1,000: 600 remain, in its own orders.
    await page.waitForFunction((id) => document.querySelector(`[data-testid="own-orders"] li[data-order="${id}"]`)?.textContent?.includes(' 600 '), orderId, { timeout: WAIT_MS });
  });

  test('two pages with reservations on the relay trade through it', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const relayAddr = relay.addr(/\/ws\/p2p\//);
    const maker = await open(t, { relay: relayAddr });
    const taker = await open(t, { relay: relayAddr });
    for (const { page } of [maker, taker]) {
      await page.waitForFunction(() => document.querySelector('[data-testid="reservations"]')?.textContent === '1', null, { timeout: WAIT_MS });
    }
    const makerAddress = await pageAddress(maker.page);
    await chain.fund(makerAddress, 10_000, RUNE_COIN);
    await chain.fund(makerAddress, 20_000);
    await pageBalances(maker.page, `30000 sat · 1000 ${RUNE}`);
    const takerAddress = await pageAddress(taker.page);
    await chain.fund(takerAddress, 100_000);
    await chain.fund(takerAddress, 100_000);
    await pageBalances(taker.page, '200000 sat');

    // The taker reaches the maker only through the relay's circuit: pages
    // accept no connections of their own.
    await taker.page.evaluate(([relayId, target]) => globalThis.darkswapMarket.node.connectThroughRelay(relayId, target),
      [relay.peerId, maker.peerId]);
    const link = taker.page.locator(`[data-testid="peer-list"] li[data-peer="${maker.peerId}"]`);
    await link.waitFor({ timeout: WAIT_MS });
    assert.equal(await link.getAttribute('data-path'), 'relayed');

    const order = await maker.page.evaluate((terms) => globalThis.darkswapMarket.node.createOrder(terms),
      { side: 'sell', base: RUNE, quote: BTC, amount: 1000, price: Number(PRICE), expires_in: 600 });
    await taker.page.locator(row(order.id)).waitFor({ timeout: WAIT_MS });
    await taker.page.locator(`[data-take-amount="${order.id}"]`).fill('1000');
    await taker.page.locator(`[data-take="${order.id}"]`).click();

    const id = await pageTrade(taker.page, 'completed');
    assert.equal(await pageTrade(maker.page, 'completed'), id);
    const trades = await taker.page.evaluate(() => globalThis.darkswapMarket.node.trades());
    const done = trades.find((x) => x.id === id);
    const txs = await chain.transactions();
    assert.ok(txs.some((tx) => tx.txid === done.txid), `swap ${done.txid} accepted by the chain`);
    // The trade crossed the circuit, and both pages counted it.
    for (const { page } of [maker, taker]) {
      const metrics = await page.evaluate(() => globalThis.darkswapMarket.node.relayMetrics());
      assert.equal(metrics.reservations, 1);
      assert.ok(metrics.relayed_connections >= 1, JSON.stringify(metrics));
      assert.ok(metrics.relayed_bytes_in > 0 && metrics.relayed_bytes_out > 0, JSON.stringify(metrics));
      assert.ok(metrics.bytes_in > metrics.relayed_bytes_in, JSON.stringify(metrics));
    }
    // All of it was taken: the order is gone from both books.
    for (const { page } of [maker, taker]) {
      await page.locator(row(order.id)).waitFor({ state: 'detached', timeout: WAIT_MS });
    }
  });
});
