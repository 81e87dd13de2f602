// The market page: a DarkSwap node in the page (the darkswap-wasm package,
// used exactly as an application would), showing the live book of one pair,
// placing and cancelling the user's orders, and how each peer is reached.
//
// URL parameters: `relay` (a relay's multiaddr over /ws or /webrtc-direct;
// repeatable), `peer` (another node to dial, e.g. a daemon's /webrtc-direct
// address; repeatable), `base` and `quote` (the pair; default
// rune:840000:3 / BTC), `store` (IndexedDB database of the identity key),
// `log` (the node's log level in the console: error, warn, info, debug).
import { DarkSwapNode, enableLogging } from '../wasm/index.js';

const params = new URLSearchParams(location.search);
const base = params.get('base') ?? 'rune:840000:3';
const quote = params.get('quote') ?? 'BTC';
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
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

function orderRow(order, me, onCancel) {
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
  }
  tr.append(td);
  return tr;
}

async function main() {
  if (params.get('log')) await enableLogging(params.get('log'));
  $('pair').textContent = `${base} / ${quote}`;
  const node = await DarkSwapNode.create({
    relays: params.getAll('relay'),
    bootstrap: params.getAll('peer'),
    ...(params.get('store') ? { identity_store: params.get('store') } : {}),
  });
  const cancel = async (id) => {
    try { await node.cancelOrder(id); } catch (error) { $('form-error').textContent = error.message; }
  };

  let me = '';
  const renderBook = coalesced(async () => {
    const book = await node.orderbook(base, quote);
    $('bids').replaceChildren(...book.bids.map((o) => orderRow(o, me, cancel)));
    $('asks').replaceChildren(...book.asks.map((o) => orderRow(o, me, cancel)));
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

  for (const type of ['order_added', 'order_updated', 'order_cancelled', 'orders_expired', 'orderbook_synced']) {
    node.on(type, renderBook);
  }
  for (const type of ['peer_connected', 'peer_disconnected', 'relay_reserved', 'relay_lost', 'hole_punch_succeeded']) {
    node.on(type, renderPeers);
  }

  $('order-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    $('form-error').textContent = '';
    try {
      await node.createOrder({
        side: String(form.get('side')),
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
  setStatus('online');
  renderBook();
  renderPeers();
  // Paths change without an event of their own (a relayed link upgraded).
  setInterval(renderPeers, 2000);
  globalThis.darkswapMarket = { node };
}

main().catch((error) => {
  console.error(error);
  setStatus(`failed: ${error.message}`);
});
