// Browser pages behind NAT routers: the network of crates/darkswap-natlab
// (nftables routers in network namespaces this test makes and deletes) with
// the test's own namespace on the public segment as 7.7.7.1, where the real
// darkswap-relay (signaling, STUN and TURN) and the page server run. Each page
// runs in a Chromium started inside the namespace of a host behind a router.
// Behind endpoint-independent routers the relay's STUN gives the pages a
// direct WebRTC path (the peer's candidate is server- or peer-reflexive, ours
// no relay); behind symmetric routers they connect through the relay's TURN
// (candidate type relay). Root only (the browser tests run as root).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CHROMIUM, Relay, TEST_TIMEOUT_MS, chat, connectResult, openPage, removeTempDirs, startStaticServer,
  tempDir, waitForPeer, waitPath,
} from './harness.mjs';

const PUBLIC_IP = '7.7.7.1';
const tag = `dsn${process.pid}`;

/** @param {string[]} args */
function ip(...args) { execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] }); }

/**
 * The router ruleset of crates/darkswap-natlab/src/nat.rs: masquerade (random
 * ports per destination when symmetric), unsolicited inbound dropped.
 * @param {boolean} symmetric
 */
function ruleset(symmetric) {
  return `table ip natlab {
  chain input { type filter hook input priority filter; policy drop; iifname "lo" accept; iifname "lan" accept; ct state established,related accept; }
  chain forward { type filter hook forward priority filter; policy drop; iifname "lan" oifname "wan" accept; ct state established,related accept; }
  chain outbound { type nat hook postrouting priority srcnat; policy accept; oifname "wan" masquerade${symmetric ? ' fully-random' : ''}; }
}
`;
}

/** The lab's namespaces and links, made once per NAT kind and deleted after. */
class Lab {
  /** @type {string[]} */ namespaces = [];
  closed = false;
  /** @param {string} name */
  #netns(name) {
    ip('netns', 'add', name);
    this.namespaces.push(name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /** @param {string} kind @param {boolean} symmetric */
  constructor(kind, symmetric) {
    const sw = this.#netns(`${tag}-${kind}-sw`);
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
    // This namespace (node, the relay, the page server) on the segment.
    this.uplink = `${tag.slice(-6)}${kind}`.slice(0, 15);
    ip('link', 'add', this.uplink, 'type', 'veth', 'peer', 'name', 'up0', 'netns', sw);
    ip('-n', sw, 'link', 'set', 'up0', 'master', 'br0');
    ip('-n', sw, 'link', 'set', 'up0', 'up');
    ip('addr', 'add', `${PUBLIC_IP}/24`, 'dev', this.uplink);
    ip('link', 'set', this.uplink, 'up');
    /** @type {string[]} */
    this.hosts = [];
    for (const n of [1, 2]) {
      const router = this.#netns(`${tag}-${kind}-r${n}`);
      const host = this.#netns(`${tag}-${kind}-h${n}`);
      ip('-n', router, 'link', 'add', 'wan', 'type', 'veth', 'peer', 'name', `p${n}`, 'netns', sw);
      ip('-n', sw, 'link', 'set', `p${n}`, 'master', 'br0');
      ip('-n', sw, 'link', 'set', `p${n}`, 'up');
      ip('-n', router, 'addr', 'add', `7.7.7.${10 + n}/24`, 'dev', 'wan');
      ip('-n', router, 'link', 'set', 'wan', 'up');
      ip('-n', router, 'link', 'add', 'lan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host);
      ip('-n', router, 'addr', 'add', `10.0.${n}.1/24`, 'dev', 'lan');
      ip('-n', router, 'link', 'set', 'lan', 'up');
      ip('-n', host, 'addr', 'add', `10.0.${n}.2/24`, 'dev', 'eth0');
      ip('-n', host, 'link', 'set', 'eth0', 'up');
      ip('-n', host, 'route', 'add', 'default', 'via', `10.0.${n}.1`);
      execFileSync('ip', ['netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      execFileSync('ip', ['netns', 'exec', router, 'nft', '-f', '-'], { input: ruleset(symmetric) });
      this.hosts.push(host);
    }
  }

  /** A Chromium that runs inside `host`'s namespace. @param {string} host */
  chromiumIn(host) {
    const wrapper = join(tempDir('dsw-nat-chromium-'), 'chromium');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${host} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    return wrapper;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    try { ip('link', 'del', this.uplink); } catch { /* gone with the switch */ }
    for (const name of this.namespaces.reverse()) {
      try { ip('netns', 'del', name); } catch { /* already gone */ }
    }
  }
}

/** @type {Lab[]} */
const labs = [];
/** @type {Relay[]} */
const relays = [];
after(async () => {
  for (const relay of relays) await relay.stop();
  for (const lab of labs) lab.close();
  removeTempDirs();
});

/**
 * Types of the local and remote candidates of the pair a page's direct
 * connection uses.
 * @param {import('playwright-core').Page} page
 * @param {string} peerId
 */
function selectedPair(page, peerId) {
  return page.evaluate(async (id) => {
    const stats = await window.darkswap.getConnection(id)._direct.pc.getStats();
    let pair = null;
    stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId); });
    if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
    return pair ? { local: stats.get(pair.localCandidateId)?.candidateType, remote: stats.get(pair.remoteCandidateId)?.candidateType } : null;
  }, peerId);
}

/**
 * Two pages behind two routers of one kind, with the relay's STUN/TURN.
 * @param {import('node:test').TestContext} t
 * @param {string} kind
 * @param {boolean} symmetric
 */
async function pagesBehind(t, kind, symmetric) {
  const lab = new Lab(kind, symmetric);
  labs.push(lab);
  // Each test's lab goes with it: the next one puts 7.7.7.1 on a new link.
  t.after(() => lab.close());
  const relay = await Relay.start({
    host: '0.0.0.0',
    env: { DARKSWAP_RELAY_TURN__ENABLED: 'true', DARKSWAP_RELAY_TURN__RELAY_IP: PUBLIC_IP },
  });
  relays.push(relay);
  // Stopped after the test (the next one binds the same STUN/TURN port);
  // `after` catches what a failure leaves.
  t.after(() => relay.stop());
  const files = await startStaticServer(PUBLIC_IP);
  t.after(() => files.close());
  const port = relay.addr.split(':').pop();
  const signalingUrl = `ws://${PUBLIC_IP}:${port}/signaling`;
  const pages = [];
  for (const host of lab.hosts) {
    pages.push(await openPage(t, {
      baseUrl: files.baseUrl, signalingUrl, query: { relayIce: '1', iceTimeout: '15000' },
      executablePath: lab.chromiumIn(host),
      // WebCrypto needs a secure context; the lab's page server is plain HTTP.
      extraArgs: [`--unsafely-treat-insecure-origin-as-secure=${files.baseUrl}`],
    }));
  }
  const [a, b] = pages;
  for (const p of pages) {
    await p.page.waitForFunction(() => window.darkswap.iceServers.some((s) => String(s.urls).startsWith('turn:')), null, { timeout: 20_000 });
  }
  await waitForPeer(a.page, b.peerId);
  assert.equal(await connectResult(a, b), 'open/direct', 'a WebRTC path, not a relayed circuit');
  await waitPath(b.page, a.peerId, 'direct');
  await chat(a, b, `behind ${kind} routers`);
  await chat(b, a, 'and back');
  return { a, b };
}

test('pages behind endpoint-independent NAT routers get a direct WebRTC path from the relay\'s STUN', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { a, b } = await pagesBehind(t, 'eim', false);
  const pair = await selectedPair(a.page, b.peerId);
  assert.ok(pair, 'a selected candidate pair');
  assert.notEqual(pair.local, 'relay', JSON.stringify(pair));
  assert.notEqual(pair.remote, 'relay', JSON.stringify(pair));
  assert.ok(['srflx', 'prflx'].includes(pair.remote), `the peer is reached at its router's address: ${JSON.stringify(pair)}`);
});

test('pages behind symmetric NAT routers connect through the relay\'s TURN', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { a, b } = await pagesBehind(t, 'sym', true);
  const pairs = [await selectedPair(a.page, b.peerId), await selectedPair(b.page, a.peerId)];
  assert.ok(pairs.every(Boolean), 'a selected candidate pair on both sides');
  // Through TURN when either end of the pair is a relay candidate. Which
  // end a page reports as `relay` varies: a check sent from a host
  // candidate to the other page's allocation comes back with the router's
  // fresh mapping, so Chromium may name its own end `prflx` and the
  // allocation `relay` (seen on both pages at once), or use its own
  // allocation as the local end.
  assert.ok(pairs.every((p) => p.local === 'relay' || p.remote === 'relay'), `each side's path runs through a relay candidate: ${JSON.stringify(pairs)}`);
});
