// Unit tests of the identity helpers (Node's WebCrypto; no browser, no relay).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOrCreateIdentity, peerIdFromPublicKey } from '../darkswap-relay-client.js';

const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/;

test('peer id of a known Ed25519 key (32 bytes of 0x01)', () => {
  // base58btc(00 24 08 01 12 20 || 01*32), computed independently with Python.
  assert.equal(peerIdFromPublicKey(new Uint8Array(32).fill(1)), '12D3KooW9tHTtS3inCZiYykw4u5G4frbjVFqhkmJX12gSNCVeH3e');
  assert.equal(peerIdFromPublicKey(Uint8Array.from({ length: 32 }, (_, i) => i)),
    '12D3KooW9pP4Seg3kZYhySpuVjn1RPdQBsUFZKiFxGMGQN5MeL6A');
});

test('every Ed25519 peer id starts with 12D3KooW and is 52 base58 characters', () => {
  for (const fill of [0x00, 0x01, 0x7f, 0x80, 0xff]) {
    const id = peerIdFromPublicKey(new Uint8Array(32).fill(fill));
    assert.ok(id.startsWith('12D3KooW'), id);
    assert.equal(id.length, 52);
    assert.match(id, BASE58);
  }
});

test('a key that is not 32 raw bytes is refused', () => {
  assert.throws(() => peerIdFromPublicKey(new Uint8Array(31)), TypeError);
  assert.throws(() => peerIdFromPublicKey(new Uint8Array(33)), TypeError);
  assert.throws(() => peerIdFromPublicKey(/** @type {any} */ ([1, 2, 3])), TypeError);
});

test('an ephemeral identity signs with Ed25519 and maps to a 12D3KooW id', async () => {
  const identity = await loadOrCreateIdentity(null);
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', identity.publicKey));
  assert.equal(raw.length, 32);
  assert.ok(peerIdFromPublicKey(raw).startsWith('12D3KooW'));
  const data = new TextEncoder().encode('darkswap-signaling/v1/register');
  const signature = await crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, data);
  assert.equal(signature.byteLength, 64);
  assert.ok(await crypto.subtle.verify({ name: 'Ed25519' }, identity.publicKey, signature, data));
  // The private key never leaves WebCrypto.
  await assert.rejects(crypto.subtle.exportKey('pkcs8', identity.privateKey));
});
