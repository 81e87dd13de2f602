// Presence on demand (docs/signaling.md, *Peers*): example.html in Debian's
// headless Chromium against a real darkswap-relay whose pages hold one peer,
// so that paging and watching show. Run like browser.test.mjs (in a loopback
// network namespace, the relay binary built by cargo beforehand).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Relay, TEST_TIMEOUT_MS, WAIT_MS, connectResult, openPage as openExamplePage, removeTempDirs, startStaticServer,
} from './harness.mjs';

/** @type {Relay} */
let relay;
/** @type {{ baseUrl: string, close: () => Promise<void> }} */
let files;

/** @param {import('node:test').TestContext} t */
function openPage(t) {
  return openExamplePage(t, { baseUrl: files.baseUrl, signalingUrl: relay.signalingUrl });
}

before(async () => {
  files = await startStaticServer();
  relay = await Relay.start({ env: { DARKSWAP_RELAY_SIGNALING__PEER_PAGE_SIZE: '1' } });
});

after(async () => {
  await relay?.stop();
  await files?.close();
  removeTempDirs();
});

/** The `data-event` of every event-log entry about `peerId`, in order. */
function eventsAbout(page, peerId) {
  return page.evaluate((id) => [...document.querySelectorAll(`[data-testid="event-log"] li[data-peer="${id}"]`)]
    .map((item) => item.getAttribute('data-event')), peerId);
}

test('a page hears only of the peers it watches, pages through the rest, and reaches a peer off its page', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const a = await openPage(t);
  const b = await openPage(t);
  const c = await openPage(t);

  // The relay's answer to list_peers comes after anything it sent A before:
  // had B's or C's registration been broadcast, A would have heard of it by then.
  const { first, next } = await a.page.evaluate(async () => {
    const page = await window.darkswap.refreshPeers();
    return { first: page, next: window.darkswap.peers };
  });
  assert.equal(first.length, 1, `one peer a page: ${first}`);
  assert.deepEqual(next, first);
  const listed = first[0];
  const offPage = listed === b.peerId ? c : b;
  assert.ok([b.peerId, c.peerId].includes(listed));
  assert.deepEqual(await eventsAbout(a.page, offPage.peerId), [], 'nobody announced the peer A did not ask for');
  assert.deepEqual(await eventsAbout(a.page, listed), ['peer-joined'], 'the listed peer entered `peers`');

  // Connecting to a peer that is on no page A holds asks the relay (watch).
  assert.equal(await connectResult(a, offPage), 'open/direct');
  assert.ok((await a.page.evaluate(() => window.darkswap.peers)).includes(offPage.peerId));
  // Paging on from the first page covers every other peer once, one a page.
  const pages = await a.page.evaluate(async () => {
    const seen = [];
    let page = await window.darkswap.listPeers();
    while (page) {
      seen.push(page.peers);
      page = page.next ? await window.darkswap.listPeers({ after: page.next, limit: 50 }) : null;
    }
    return seen;
  });
  assert.deepEqual(pages.map((p) => p.length), [1, 1]);
  assert.deepEqual(pages.flat().sort(), [b.peerId, c.peerId].sort());

  // Watched since A connected to it, its leaving is told.
  await offPage.context.close();
  await a.page.waitForFunction((peerId) => !window.darkswap.peers.includes(peerId), offPage.peerId, { timeout: WAIT_MS, polling: 100 });
  assert.equal((await eventsAbout(a.page, offPage.peerId)).includes('peer-left'), true);
});
