// Unit tests of the end-to-end encryption module with Node's WebCrypto (no
// browser, no relay). The Rust side of the same scheme is tested in
// crates/darkswap-p2p; the two are checked against each other in Chromium by
// e2e-interop.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  E2eHandshake, E2eError, FRAME_OVERHEAD, FRAME_HEADER_LEN, REPLAY_WINDOW, SIGNED_KEY_LEN,
  PREVIOUS_EPOCH_GRACE_MS, MAX_EPOCH_JUMP, ed25519KeyFromPeerId, peerIdToBytes,
} from '../darkswap-e2e.js';
import { loadOrCreateIdentity, peerIdFromPublicKey } from '../darkswap-relay-client.js';

async function peer() {
  const identity = await loadOrCreateIdentity(null);
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', identity.publicKey));
  return { identity, peerId: peerIdFromPublicKey(raw), raw };
}

/** Both sides' sessions, from a signed exchange whose messages cross. */
async function sessions(a, b) {
  const ha = await E2eHandshake.create({ identity: a.identity, localPeerId: a.peerId, remotePeerId: b.peerId });
  const hb = await E2eHandshake.create({ identity: b.identity, localPeerId: b.peerId, remotePeerId: a.peerId });
  return [await ha.accept(hb.signedKey), await hb.accept(ha.signedKey)];
}

const bytes = (text) => new TextEncoder().encode(text);
const text = (data) => new TextDecoder().decode(data);
/** Asserts that `promise` rejects with an E2eError of `code`. */
async function rejectsWith(promise, code) {
  await assert.rejects(promise, (error) => error instanceof E2eError && error.code === code, `expected ${code}`);
}

test('peer ids decode to their multihash and embedded Ed25519 key', async () => {
  const p = await peer();
  const decoded = peerIdToBytes(p.peerId);
  assert.deepEqual([...decoded.subarray(0, 6)], [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
  assert.deepEqual(ed25519KeyFromPeerId(p.peerId), p.raw);
  assert.throws(() => peerIdToBytes('0OIl'), (e) => e.code === 'e2e_unsupported_peer_id');
  // A sha256 (hashed-key) peer id embeds no key.
  assert.throws(() => ed25519KeyFromPeerId('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'),
    (e) => e.code === 'e2e_unsupported_peer_id');
});

test('round trip both ways; every frame is fresh', async () => {
  const [a, b] = [await peer(), await peer()];
  const [ab, ba] = await sessions(a, b);
  for (const message of ['', 'x', 'ü'.repeat(3000)]) {
    const frame = await ab.encrypt(bytes(message));
    assert.equal(frame.length, bytes(message).length + FRAME_OVERHEAD);
    assert.equal(text(await ba.decrypt(frame)), message);
    assert.equal(text(await ab.decrypt(await ba.encrypt(bytes(message)))), message);
  }
  const one = await ab.encrypt(bytes('same'));
  const two = await ab.encrypt(bytes('same'));
  assert.notDeepEqual(one.subarray(FRAME_HEADER_LEN), two.subarray(FRAME_HEADER_LEN));
});

test('flipping any byte of a frame is rejected; the genuine frame still decrypts', async () => {
  const [a, b] = [await peer(), await peer()];
  const [ab, ba] = await sessions(a, b);
  const frame = await ab.encrypt(bytes('an order worth protecting'));
  for (let i = 0; i < frame.length; i++) {
    const tampered = frame.slice();
    tampered[i] ^= 0x01;
    // Epoch bytes: a high byte makes the epoch too far ahead, the low byte a
    // near epoch whose derived key does not authenticate the frame.
    const expected = i === 0 ? 'e2e_unsupported_version' : i === 1 ? 'e2e_malformed'
      : i < 5 ? 'e2e_epoch_too_far_ahead' : 'e2e_authentication_failed';
    await rejectsWith(ba.decrypt(tampered), expected);
  }
  for (let len = 0; len < frame.length; len++) {
    await rejectsWith(ba.decrypt(frame.subarray(0, len)), len < FRAME_OVERHEAD ? 'e2e_malformed' : 'e2e_authentication_failed');
  }
  assert.equal(text(await ba.decrypt(frame)), 'an order worth protecting');
});

test('replays and frames older than the window are rejected, reordering within it accepted', async () => {
  const [a, b] = [await peer(), await peer()];
  const [ab, ba] = await sessions(a, b);
  const frames = [];
  for (let i = 0; i <= REPLAY_WINDOW + 5; i++) frames.push(await ab.encrypt(bytes(String(i))));
  const newest = REPLAY_WINDOW + 5;
  await ba.decrypt(frames[newest]);
  for (let i = newest - 1; i >= 6; i--) assert.equal(text(await ba.decrypt(frames[i])), String(i));
  for (let i = 0; i <= 5; i++) await rejectsWith(ba.decrypt(frames[i]), 'e2e_too_old');
  for (const i of [6, 500, newest]) await rejectsWith(ba.decrypt(frames[i]), 'e2e_replay');
  // Concurrent decryptions of one frame: exactly one wins.
  const next = await ab.encrypt(bytes('once'));
  const results = await Promise.allSettled([ba.decrypt(next), ba.decrypt(next)]);
  assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
});

test('rotation mid-stream: in-flight frames of the old epoch decrypt until the grace period ends', async () => {
  const [a, b] = [await peer(), await peer()];
  const [ab, ba] = await sessions(a, b);
  const old = await ab.encrypt(bytes('before'));
  await ab.rotate();
  const fresh = await ab.encrypt(bytes('after'));
  assert.equal(new DataView(fresh.buffer).getUint32(2), 1);
  assert.equal(text(await ba.decrypt(fresh)), 'after');
  assert.equal(text(await ba.decrypt(old)), 'before');
  await rejectsWith(ba.decrypt(old), 'e2e_replay');
  const late = await ab.encrypt(bytes('x'));
  // Epochs far ahead are refused without derivation.
  const far = late.slice();
  new DataView(far.buffer).setUint32(2, 1 + MAX_EPOCH_JUMP + 1);
  await rejectsWith(ba.decrypt(far), 'e2e_epoch_too_far_ahead');
  ba.prune(performance.now() + PREVIOUS_EPOCH_GRACE_MS);
  const old2 = old.slice();
  new DataView(old2.buffer).setBigUint64(6, 7n);
  await rejectsWith(ba.decrypt(old2), 'e2e_unknown_epoch');
  assert.equal(text(await ba.decrypt(late)), 'x');
});

test('signed keys: tampered, substituted or misaddressed keys fail with e2e_bad_signature', async () => {
  const [a, b, mallory] = [await peer(), await peer(), await peer()];
  const fromA = await E2eHandshake.create({ identity: a.identity, localPeerId: a.peerId, remotePeerId: b.peerId });
  assert.equal(fromA.signedKey.length, SIGNED_KEY_LEN);
  const newB = () => E2eHandshake.create({ identity: b.identity, localPeerId: b.peerId, remotePeerId: a.peerId });
  for (const i of [2, 40, 70, SIGNED_KEY_LEN - 1]) {
    const tampered = fromA.signedKey.slice();
    tampered[i] ^= 0x01;
    await rejectsWith((await newB()).accept(tampered), 'e2e_bad_signature');
  }
  const substituted = await E2eHandshake.create({ identity: mallory.identity, localPeerId: mallory.peerId, remotePeerId: b.peerId });
  await rejectsWith((await newB()).accept(substituted.signedKey), 'e2e_bad_signature');
  const misaddressed = await E2eHandshake.create({ identity: a.identity, localPeerId: a.peerId, remotePeerId: mallory.peerId });
  await rejectsWith((await newB()).accept(misaddressed.signedKey), 'e2e_bad_signature');
  await rejectsWith((await newB()).accept(fromA.signedKey.subarray(0, 100)), 'e2e_malformed');
  const version = fromA.signedKey.slice();
  version[0] = 9;
  await rejectsWith((await newB()).accept(version), 'e2e_unsupported_version');
  // The genuine key still works, once.
  const hb = await newB();
  const ba = await hb.accept(fromA.signedKey);
  const ab = await fromA.accept(hb.signedKey);
  assert.equal(text(await ba.decrypt(await ab.encrypt(bytes('ok')))), 'ok');
  await rejectsWith(hb.accept(fromA.signedKey), 'e2e_malformed');
});
