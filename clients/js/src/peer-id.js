// @ts-check
/**
 * libp2p peer ids of Ed25519 keys (`12D3KooW...`): base58btc of the identity
 * multihash of the key's protobuf encoding.
 * @module
 */

import { concatBytes } from './bytes.js';

const BASE58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/**
 * Bitcoin-alphabet base58 (libp2p's `base58btc`, without multibase prefix).
 * @param {Uint8Array} bytes
 * @returns {string}
 */
function base58btcEncode(bytes) {
  /** @type {number[]} little-endian base-58 digits */
  const digits = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) { digits.push(carry % 58); carry = (carry / 58) | 0; }
  }
  let out = '';
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out += '1';
  for (let i = digits.length - 1; i >= 0; i--) out += BASE58_ALPHABET[digits[i]];
  return out;
}

/**
 * Decodes bitcoin-alphabet base58; `null` if `text` is not base58.
 * @param {string} text
 * @returns {Uint8Array | null}
 */
function base58btcDecode(text) {
  /** @type {number[]} little-endian bytes */
  const bytes = [];
  for (const char of text) {
    let carry = BASE58_ALPHABET.indexOf(char);
    if (carry < 0) return null;
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i] * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) { bytes.push(carry & 0xff); carry >>= 8; }
  }
  let zeros = 0;
  while (zeros < text.length && text[zeros] === '1') zeros++;
  return Uint8Array.from([...new Array(zeros).fill(0), ...bytes.reverse()]);
}

/**
 * The bytes of a libp2p peer id (its multihash), as the relay signs them
 * into a token challenge; `null` if `peerId` is not one.
 * @param {unknown} peerId
 * @returns {Uint8Array | null}
 */
export function peerIdBytes(peerId) {
  if (typeof peerId !== 'string' || peerId.length === 0 || peerId.length > 128) return null;
  const bytes = base58btcDecode(peerId);
  // A multihash: code, then digest length, then the digest (identity 0x00 or sha2-256 0x12).
  if (!bytes || bytes.length < 3 || (bytes[0] !== 0x00 && bytes[0] !== 0x12) || bytes[1] !== bytes.length - 2) return null;
  return bytes;
}

/**
 * libp2p protobuf encoding of an Ed25519 public key: `08 01 12 20 || key`.
 * @param {Uint8Array} raw the 32 raw public key bytes
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function ed25519PublicKeyProtobuf(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== 32) {
    throw new TypeError('an Ed25519 public key is 32 raw bytes');
  }
  return concatBytes(Uint8Array.of(0x08, 0x01, 0x12, 0x20), raw);
}

/**
 * Derives the libp2p peer id (`12D3KooW...`) of an Ed25519 public key: base58btc
 * of the identity multihash (`00 24`) of the key's protobuf encoding (`08 01 12 20 || key`).
 * @param {Uint8Array} rawEd25519PublicKey the 32 raw public key bytes
 * @returns {string}
 */
export function peerIdFromPublicKey(rawEd25519PublicKey) {
  const protobuf = ed25519PublicKeyProtobuf(rawEd25519PublicKey);
  return base58btcEncode(concatBytes(Uint8Array.of(0x00, protobuf.length), protobuf));
}
