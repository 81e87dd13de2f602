// The market page: a DarkSwap node in the page (the darkswap-wasm package,
// used exactly as an application would), showing the live book of one pair,
// placing and cancelling the user's orders, and how each peer is reached.
//
// URL parameters: `relay` (a relay's multiaddr over /ws or /webrtc-direct;
// repeatable), `peer` (another node to dial, e.g. a daemon's /webrtc-direct
// address; repeatable), `base` and `quote` (the pair; default
// rune:840000:3 / BTC), `store` (IndexedDB database of the identity key),
// `log` (the node's log level in the console: error, warn, info, debug),
// `esplora` and `ord` (the chain services' roots: with both, trading is on
// and the page has a wallet and can take orders).
import { DarkSwapNode, enableLogging } from '../wasm/index.js';

const params = new URLSearchParams(location.search);
const base = params.get('base') ?? 'rune:840000:3';
const quote = params.get('quote') ?? 'BTC';
/** The page's element with `data-testid` `id` (every one named here exists). */
const $ = (id) => /** @type {HTMLElement} */ (document.querySelector(`[data-testid="${id}"]`));
const short = (peer) => `${peer.slice(0, 8)}…${peer.slice(-6)}`;

function setStatus(text) { $('status').textContent = text; }

/** Runs `refresh` at most once per animation frame, however many events ask. */
function coalesced(refresh) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(async () => {
      queued = false;
      try { await refresh(); } catch (error) { console.error(error); }
    });
  };
}

const ENDED = new Set(['completed', 'rejected', 'cancelled', 'timed_out', 'failed']);

function orderRow(order, me, onCancel, onTake) {
  const tr = document.createElement('tr');
  tr.dataset.order = order.id;
  tr.dataset.maker = order.maker;
  if (order.maker === me) tr.classList.add('mine');
  for (const text of [order.price, order.amount, short(order.maker)]) {
    const td = document.createElement('td');
    td.textContent = String(text);
    tr.append(td);
  }
  const td = document.createElement('td');
  if (order.maker === me) {
    const cancel = document.createElement('button');
    cancel.textContent = 'cancel';
    cancel.dataset.cancel = order.id;
    cancel.addEventListener('click', () => onCancel(order.id));
    td.append(cancel);
  } else if (onTake) {
    const amount = document.createElement('input');
    amount.type = 'number';
    amount.min = '1';
    amount.max = String(order.amount);
    amount.value = String(order.amount);
    amount.dataset.takeAmount = order.id;
    amount.setAttribute('aria-label', 'amount to take');
    const take = document.createElement('button');
    take.textContent = 'take';
    take.dataset.take = order.id;
    take.addEventListener('click', () => onTake(order.id, Number(amount.value)));
    td.append(amount, take);
  }
  tr.append(td);
  return tr;
}

/** `{asset: amount}` over the wallet's coins; BTC in sats. */
function balances(wallet) {
  const total = new Map([['BTC', 0n]]);
  for (const coin of wallet.coins) {
    total.set('BTC', total.get('BTC') + BigInt(coin.value));
    for (const [asset, amount] of Object.entries(coin.holdings)) {
      total.set(asset, (total.get(asset) ?? 0n) + BigInt(amount));
    }
  }
  return [...total].map(([asset, amount]) => `${amount} ${asset === 'BTC' ? 'sat' : asset}`).join(' · ');
}

async function main() {
  const level = params.get('log');
  if (level) await enableLogging(/** @type {'error' | 'warn' | 'info' | 'debug' | 'trace'} */ (level));
  $('pair').textContent = `${base} / ${quote}`;
  const trading = params.get('esplora') && params.get('ord')
    ? { esplora_url: params.get('esplora'), ord_url: params.get('ord') }
    : undefined;
  const node = await DarkSwapNode.create({
    relays: params.getAll('relay'),
    bootstrap: params.getAll('peer'),
    ...(params.get('store') ? { identity_store: params.get('store') } : {}),
    ...(trading ? { trading } : {}),
  });
  const cancel = async (id) => {
    try { await node.cancelOrder(id); } catch (error) { $('form-error').textContent = error.message; }
  };
  const take = trading && (async (id, amount) => {
    $('trade-error').textContent = '';
    try { await node.takeOrder(id, amount); } catch (error) { $('trade-error').textContent = error.message; }
  });

  let me = '';
  const renderBook = coalesced(async () => {
    const book = await node.orderbook(base, quote);
    $('bids').replaceChildren(...book.bids.map((o) => orderRow(o, me, cancel, take)));
    $('asks').replaceChildren(...book.asks.map((o) => orderRow(o, me, cancel, take)));
    const own = await node.ownOrders();
    $('own-orders').replaceChildren(...own.map((o) => {
      const li = document.createElement('li');
      li.dataset.order = o.id;
      li.textContent = `${o.side} ${o.amount} ${o.base} @ ${o.price} ${o.quote} `;
      const button = document.createElement('button');
      button.textContent = 'cancel';
      button.dataset.cancel = o.id;
      button.addEventListener('click', () => cancel(o.id));
      li.append(button);
      return li;
    }));
  });
  const renderPeers = coalesced(async () => {
    const peers = await node.peers();
    $('peer-list').replaceChildren(...peers.map((p) => {
      const li = document.createElement('li');
      li.dataset.peer = p.peer_id;
      li.dataset.path = p.path;
      const id = document.createElement('code');
      id.textContent = short(p.peer_id);
      const path = document.createElement('span');
      path.dataset.testid = 'path';
      path.textContent = p.path;
      li.append(id, ' ', path, ` ${p.latency_ms ?? '–'} ms`);
      return li;
    }));
    const metrics = await node.relayMetrics();
    $('reservations').textContent = String(metrics.reservations);
  });

  const renderWallet = coalesced(async () => {
    const wallet = await node.wallet();
    $('wallet-address').textContent = wallet.addresses[0] ?? '–';
    $('balances').textContent = balances(wallet);
  });
  const syncWallet = async () => {
    $('trade-error').textContent = '';
    try { await node.syncWallet(); } catch (error) { $('trade-error').textContent = error.message; }
    renderWallet();
  };
  const renderTrades = coalesced(async () => {
    const trades = await node.trades();
    $('trade-list').replaceChildren(...trades.map((t) => {
      const li = document.createElement('li');
      li.dataset.trade = t.id;
      li.dataset.state = t.state;
      li.textContent = `${t.role} of ${t.order_id.slice(0, 8)}… with ${short(t.peer_id)}: `;
      const state = document.createElement('strong');
      state.textContent = t.state;
      li.append(state, t.detail ? ` (${t.detail})` : '', t.txid ? ` tx ${t.txid.slice(0, 12)}…` : '');
      return li;
    }));
  });

  for (const type of ['order_added', 'order_updated', 'order_cancelled', 'orders_expired', 'orderbook_synced']) {
    node.on(type, renderBook);
  }
  for (const type of ['peer_connected', 'peer_disconnected', 'relay_reserved', 'relay_lost', 'hole_punch_succeeded']) {
    node.on(type, renderPeers);
  }

  node.on('trade_updated', (event) => {
    renderTrades();
    // A trade that ended changed the coins (spent, or freed again).
    if (ENDED.has(event.state)) syncWallet();
  });
  $('sync-wallet').addEventListener('click', syncWallet);
  $('trading').hidden = !trading;

  $('order-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = new FormData(/** @type {HTMLFormElement} */ (event.target));
    $('form-error').textContent = '';
    try {
      await node.createOrder({
        side: form.get('side') === 'buy' ? 'buy' : 'sell',
        base,
        quote,
        amount: Number(form.get('amount')),
        price: Number(form.get('price')),
        expires_in: Number(form.get('expires_in')),
      });
    } catch (error) {
      $('form-error').textContent = error.message;
    }
  });

  // Leaving (reload, close, navigation): say goodbye, so peers drop this
  // node's connections and orders now rather than when their keep-alives
  // give up; a reloaded page is then a fresh peer to them at once.
  addEventListener('pagehide', () => { node.stop().catch(() => {}); });

  setStatus('starting…');
  me = await node.start();
  $('peer-id').textContent = me;
  // For scripts and tests driving the page: the node it runs.
  globalThis.darkswapMarket = { node };
  setStatus('online');
  renderBook();
  renderPeers();
  if (trading) await syncWallet();
  // Paths change without an event of their own (a relayed link upgraded).
  setInterval(renderPeers, 2000);
}

main().catch((error) => {
  console.error(error);
  setStatus(`failed: ${error.message}`);
});
