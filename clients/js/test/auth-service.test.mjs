// fetchRelayToken and refreshRelayToken (Node's fetch and WebCrypto) against
// the real darkswap-relay's token service: the relay accepting the signed
// challenge is the interop check of the signed bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Relay, removeTempDirs } from './harness.mjs';
import { fetchRelayToken, loadOrCreateIdentity, peerIdFromPublicKey, refreshRelayToken } from '../darkswap-relay-client.js';

/** @type {Relay} */
let relay;

before(async () => {
  relay = await Relay.start({
    // Three /auth requests per minute from one address: the fourth is a 429.
    env: { DARKSWAP_RELAY_LIMITS__HTTP_RATE_PER_IP__LIMIT: '3', DARKSWAP_RELAY_LIMITS__HTTP_RATE_PER_IP__INTERVAL_SECS: '60' },
  });
});

after(async () => {
  await relay?.stop();
  removeTempDirs();
});

/** @param {string} token */
function claims(token) {
  const [header, payload] = token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
  return { header, payload };
}

/** @param {CryptoKeyPair} identity */
async function peerIdOf(identity) {
  return peerIdFromPublicKey(new Uint8Array(await crypto.subtle.exportKey('raw', identity.publicKey)));
}

test('a signed challenge earns a token for our peer id, refresh replaces it, and the limit answers 429', async () => {
  const identity = await loadOrCreateIdentity(null);
  const peerId = await peerIdOf(identity);

  // Request 1 and 2: challenge, token.
  const before = Math.floor(Date.now() / 1000);
  const earned = await fetchRelayToken({ signalingUrl: relay.signalingUrl, identity });
  assert.equal(earned.role, 'user');
  assert.ok(earned.expiresAt >= before + 3600 - 5 && earned.expiresAt <= before + 3600 + 5, `${earned.expiresAt}`);
  const { header, payload } = claims(earned.token);
  assert.equal(header.alg, 'EdDSA');
  assert.equal(payload.sub, peerId, 'issued to the peer that signed');
  assert.equal(payload.exp, earned.expiresAt);

  // Request 3: refresh gives another token; the old one is revoked by it.
  const refreshed = await refreshRelayToken({ authUrl: `${relay.httpUrl}/auth`, token: earned.token });
  assert.notEqual(refreshed.token, earned.token);
  assert.equal(claims(refreshed.token).payload.sub, peerId);

  // Request 4 from this address within the minute: 429 with Retry-After.
  await assert.rejects(refreshRelayToken({ signalingUrl: relay.signalingUrl, token: earned.token }), (error) => {
    assert.equal(error.code, 'rate_limited');
    assert.equal(error.status, 429);
    assert.ok(error.retryAfterMs >= 1000 && error.retryAfterMs <= 20_000, `${error.retryAfterMs}`);
    return true;
  });
});

test('the token service refusing, missing or unreachable is reported with a code', async () => {
  const identity = await loadOrCreateIdentity(null);
  // Another relay: its own limits, and we can stop it.
  const other = await Relay.start();
  try {
    const earned = await fetchRelayToken({ signalingUrl: other.signalingUrl, identity });
    await refreshRelayToken({ signalingUrl: other.signalingUrl, token: earned.token });
    // The refresh revoked it: refreshing it again is refused as revoked.
    await assert.rejects(refreshRelayToken({ signalingUrl: other.signalingUrl, token: earned.token }),
      { code: 'revoked', status: 401 });
    await assert.rejects(refreshRelayToken({ signalingUrl: other.signalingUrl, token: 'not-a-jwt' }),
      { code: 'malformed', status: 401 });
    await assert.rejects(fetchRelayToken({ authUrl: `${other.httpUrl}/elsewhere`, identity }),
      { code: 'not_found', status: 404 });
  } finally {
    await other.stop();
  }
  await assert.rejects(fetchRelayToken({ signalingUrl: other.signalingUrl, identity }),
    { code: 'auth_unavailable', status: 0 });
  await assert.rejects(fetchRelayToken({ signalingUrl: other.signalingUrl }), TypeError);
});
