// @ts-check
/**
 * End-to-end encryption between two peers, with WebCrypto only: the scheme of
 * `darkswap_p2p::encryption` (Rust), byte for byte, restricted to AES-256-GCM
 * (WebCrypto has no ChaCha20-Poly1305). Specified in docs/security-encryption.md.
 *
 * ```js
 * const handshake = await E2eHandshake.create({ identity, localPeerId, remotePeerId });
 * send(handshake.signedKey);                       // 130 bytes
 * const session = await handshake.accept(theirSignedKey); // throws E2eError 'e2e_bad_signature', ...
 * const frame = await session.encrypt(bytes);
 * const plain = await session.decrypt(theirFrame);  // throws E2eError 'e2e_replay', ...
 * ```
 *
 * Key material lives in non-extractable `CryptoKey`s; the few raw bytes HKDF
 * hands back are imported and overwritten at once.
 *
 * @module darkswap-e2e
 */

/** Version byte of frames and signed keys. */
export const E2E_VERSION = 1;
/** Wire id of AES-256-GCM, the only algorithm WebCrypto offers of the two. */
export const ALG_AES_GCM_256 = 1;
/** Wire id of ChaCha20-Poly1305 (recognised, refused with `e2e_algorithm_mismatch`). */
export const ALG_CHACHA20_POLY1305 = 2;
export const FRAME_HEADER_LEN = 14;
export const TAG_LEN = 16;
/** Bytes a frame adds to its plaintext. */
export const FRAME_OVERHEAD = /** @type {30} */ (FRAME_HEADER_LEN + TAG_LEN);
export const KEY_SHARE_LEN = 64;
/** Length of a signed key with an Ed25519 signature. */
export const SIGNED_KEY_LEN = /** @type {130} */ (2 + KEY_SHARE_LEN + 64);
export const REPLAY_WINDOW = 1024;
export const MAX_EPOCH_JUMP = 16;
export const MAX_RETAINED_EPOCHS = 32;
/** How long a previous receiving epoch stays usable once the peer moved on. */
export const PREVIOUS_EPOCH_GRACE_MS = 60_000;

const textEncoder = new TextEncoder();
const SIGNATURE_LABEL = textEncoder.encode('darkswap-e2e/v1/key');
const SESSION_LABEL = textEncoder.encode('darkswap-e2e/v1/session');
const EPOCH_LABEL = textEncoder.encode('darkswap-e2e/v1/epoch');
const EMPTY = new Uint8Array(0);
const COUNTER_MAX = (1n << 64n) - 1n;
const BASE58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/**
 * Error of this module, with a machine-readable `code`: `e2e_bad_signature`,
 * `e2e_malformed`, `e2e_unsupported_version`, `e2e_algorithm_mismatch`,
 * `e2e_unsupported_peer_id`, `e2e_weak_key`, `e2e_authentication_failed`,
 * `e2e_replay`, `e2e_too_old`, `e2e_unknown_epoch`, `e2e_epoch_too_far_ahead`,
 * `e2e_counter_exhausted`, `e2e_epoch_exhausted`, `e2e_unavailable`.
 */
export class E2eError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'E2eError';
    /** @type {string} */
    this.code = code;
  }
}

// ───────────────────────────── bytes ─────────────────────────────

/** @param {Uint8Array[]} parts */
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
}

/** Lexicographic, shorter prefix first (Rust's `Ord` for byte slices). @param {Uint8Array} a @param {Uint8Array} b */
function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** @param {Uint8Array} bytes */
function lengthPrefixed(bytes) {
  return concat(Uint8Array.of(bytes.length), bytes);
}

/**
 * The binary form of a libp2p peer id (its multihash), from its base58 text.
 * @param {string} peerId
 * @returns {Uint8Array}
 */
export function peerIdToBytes(peerId) {
  if (typeof peerId !== 'string' || peerId.length === 0 || peerId.length > 128) {
    throw new E2eError('e2e_unsupported_peer_id', 'not a base58 peer id');
  }
  /** @type {number[]} little-endian base-256 digits */
  const bytes = [];
  for (const char of peerId) {
    let carry = BASE58_ALPHABET.indexOf(char);
    if (carry < 0) throw new E2eError('e2e_unsupported_peer_id', `invalid base58 character ${JSON.stringify(char)}`);
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i] * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) { bytes.push(carry & 0xff); carry >>= 8; }
  }
  for (let i = 0; i < peerId.length && peerId[i] === '1'; i++) bytes.push(0);
  return Uint8Array.from(bytes.reverse());
}

/**
 * The raw Ed25519 public key a peer id embeds (identity multihash `00 24` of
 * the protobuf `08 01 12 20 || key`).
 * @param {string} peerId
 * @returns {Uint8Array}
 */
export function ed25519KeyFromPeerId(peerId) {
  const bytes = peerIdToBytes(peerId);
  const prefix = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
  if (bytes.length !== 38 || prefix.some((b, i) => bytes[i] !== b)) {
    throw new E2eError('e2e_unsupported_peer_id', `${peerId} does not embed an Ed25519 key`);
  }
  return bytes.slice(6);
}

// ───────────────────────────── key derivation ─────────────────────────────

/**
 * HKDF-SHA256 (RFC 5869), `length` bytes.
 * @param {Uint8Array} salt
 * @param {Uint8Array} ikm
 * @param {Uint8Array} info
 * @param {number} length
 */
async function hkdf(salt, ikm, info, length) {
  const key = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (ikm), 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: /** @type {BufferSource} */ (salt), info: /** @type {BufferSource} */ (info) },
    key, length * 8,
  );
  return new Uint8Array(bits);
}

/**
 * @typedef {object} EpochKeys
 * @property {CryptoKey} key AES-256-GCM, non-extractable
 * @property {Uint8Array} noncePrefix 4 bytes
 */

/**
 * An epoch's keys and the next epoch's chain key, from this epoch's chain key
 * (which the caller overwrites afterwards).
 * @param {Uint8Array} chain 32 bytes
 * @returns {Promise<{ keys: EpochKeys, next: Uint8Array }>}
 */
async function epochKeys(chain) {
  const okm = await hkdf(EMPTY, chain, EPOCH_LABEL, 68);
  try {
    const key = await crypto.subtle.importKey('raw', okm.subarray(0, 32), 'AES-GCM', false, ['encrypt', 'decrypt']);
    return { keys: { key, noncePrefix: okm.slice(32, 36) }, next: okm.slice(36, 68) };
  } finally {
    okm.fill(0);
  }
}

/**
 * @param {Uint8Array} noncePrefix
 * @param {bigint} counter
 */
function nonceOf(noncePrefix, counter) {
  const nonce = new Uint8Array(12);
  nonce.set(noncePrefix, 0);
  new DataView(nonce.buffer).setBigUint64(4, counter, false);
  return nonce;
}

/**
 * @param {number} epoch
 * @param {bigint} counter
 */
function frameHeader(epoch, counter) {
  const header = new Uint8Array(FRAME_HEADER_LEN);
  const view = new DataView(header.buffer);
  header[0] = E2E_VERSION;
  header[1] = ALG_AES_GCM_256;
  view.setUint32(2, epoch, false);
  view.setBigUint64(6, counter, false);
  return header;
}

// ───────────────────────────── replay window ─────────────────────────────

/** Accepted counters of one epoch: the highest, and a bitmap of the window below it (RFC 6479). */
class ReplayWindow {
  /** @type {bigint | null} */ highest = null;
  bits = new Uint32Array(REPLAY_WINDOW / 32);

  /**
   * @param {number} epoch
   * @param {bigint} counter
   */
  check(epoch, counter) {
    if (this.highest === null || counter > this.highest) return;
    if (this.highest - counter >= BigInt(REPLAY_WINDOW)) {
      throw new E2eError('e2e_too_old', `frame too old (epoch ${epoch}, counter ${counter}, newest ${this.highest})`);
    }
    if (this.#bit(counter)) throw new E2eError('e2e_replay', `replayed frame (epoch ${epoch}, counter ${counter})`);
  }

  /** @param {bigint} counter */
  accept(counter) {
    if (this.highest === null) {
      this.highest = counter;
    } else if (counter > this.highest) {
      const window = BigInt(REPLAY_WINDOW);
      const advance = counter - this.highest < window ? counter - this.highest : window;
      for (let c = counter - advance + 1n; c <= counter; c++) this.#set(c, false);
      this.highest = counter;
    }
    this.#set(counter, true);
  }

  /** @param {bigint} counter */
  #bit(counter) {
    const slot = Number(counter % BigInt(REPLAY_WINDOW));
    return (this.bits[slot >>> 5] & (1 << (slot & 31))) !== 0;
  }

  /** @param {bigint} counter @param {boolean} value */
  #set(counter, value) {
    const slot = Number(counter % BigInt(REPLAY_WINDOW));
    if (value) this.bits[slot >>> 5] |= 1 << (slot & 31);
    else this.bits[slot >>> 5] &= ~(1 << (slot & 31));
  }
}

// ───────────────────────────── session ─────────────────────────────

/**
 * @typedef {object} RecvEpoch
 * @property {number} epoch
 * @property {EpochKeys} keys
 * @property {ReplayWindow} window
 * @property {number} [leftAt] when the peer moved past it (`performance.now()`)
 */

/**
 * An established session with one peer. Made by {@link E2eHandshake#accept}.
 */
export class E2eSession {
  /** The peer this session is with. @readonly @type {string} */ remotePeerId;
  // sending
  /** @type {number} */ #sendEpoch = 0;
  /** @type {EpochKeys} */ #sendKeys;
  /** @type {Uint8Array} */ #sendNext;
  /** @type {bigint} */ #sendCounter = 0n;
  // receiving
  /** @type {RecvEpoch} */ #recv;
  /** @type {Uint8Array} */ #recvNext;
  /** @type {RecvEpoch[]} oldest first */ #previous = [];
  /** decryptions run one at a time: window and epoch updates stay consistent */
  /** @type {Promise<unknown>} */ #decrypting = Promise.resolve();

  /**
   * @private
   * @param {string} remotePeerId
   * @param {{ keys: EpochKeys, next: Uint8Array }} send
   * @param {{ keys: EpochKeys, next: Uint8Array }} recv
   */
  constructor(remotePeerId, send, recv) {
    this.remotePeerId = remotePeerId;
    this.#sendKeys = send.keys;
    this.#sendNext = send.next;
    this.#recv = { epoch: 0, keys: recv.keys, window: new ReplayWindow() };
    this.#recvNext = recv.next;
  }

  /**
   * @internal Made by {@link E2eHandshake#accept} only.
   * @param {string} remotePeerId
   * @param {{ keys: EpochKeys, next: Uint8Array }} send
   * @param {{ keys: EpochKeys, next: Uint8Array }} recv
   * @returns {E2eSession}
   */
  static _establish(remotePeerId, send, recv) {
    return new E2eSession(remotePeerId, send, recv);
  }

  /** Current sending epoch. */
  get epoch() { return this.#sendEpoch; }

  /**
   * Encrypts one message into a frame.
   * @param {Uint8Array} plaintext
   * @returns {Promise<Uint8Array>}
   */
  async encrypt(plaintext) {
    if (this.#sendCounter === COUNTER_MAX) throw new E2eError('e2e_counter_exhausted', 'message counter exhausted; rotate the keys');
    // Reserved before the first await: concurrent calls never share a nonce.
    const counter = this.#sendCounter++;
    const keys = this.#sendKeys;
    const header = frameHeader(this.#sendEpoch, counter);
    const sealed = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: nonceOf(keys.noncePrefix, counter), additionalData: header, tagLength: 128 },
      keys.key, /** @type {BufferSource} */ (plaintext),
    );
    return concat(header, new Uint8Array(sealed));
  }

  /**
   * Moves sending to the next epoch if the current one has been used (see the
   * Rust `rotate_keys`); the previous chain key is overwritten.
   * @returns {Promise<void>}
   */
  async rotate() {
    if (this.#sendCounter === 0n) return;
    if (this.#sendEpoch === 0xffff_ffff) throw new E2eError('e2e_epoch_exhausted', 'key epochs exhausted');
    const chain = this.#sendNext;
    const { keys, next } = await epochKeys(chain);
    chain.fill(0);
    this.#sendNext = next;
    this.#sendKeys = keys;
    this.#sendEpoch += 1;
    this.#sendCounter = 0n;
  }

  /**
   * Decrypts a frame of the peer. Rejects with an {@link E2eError}; the session
   * is unchanged unless the frame authenticates.
   * @param {Uint8Array} frame
   * @returns {Promise<Uint8Array>}
   */
  decrypt(frame) {
    const result = this.#decrypting.then(() => this.#decrypt(frame));
    this.#decrypting = result.catch(() => {});
    return result;
  }

  /** Drops previous receiving epochs whose grace period is over. */
  prune(now = performance.now()) {
    this.#previous = this.#previous.filter((e) => now - /** @type {number} */ (e.leftAt) < PREVIOUS_EPOCH_GRACE_MS);
  }

  /** @param {Uint8Array} frame */
  async #decrypt(frame) {
    if (!(frame instanceof Uint8Array) || frame.length === 0) throw new E2eError('e2e_malformed', 'empty frame');
    if (frame[0] !== E2E_VERSION) throw new E2eError('e2e_unsupported_version', `unsupported version ${frame[0]}`);
    if (frame.length < FRAME_OVERHEAD) throw new E2eError('e2e_malformed', 'shorter than header and tag');
    if (frame[1] === ALG_CHACHA20_POLY1305) throw new E2eError('e2e_algorithm_mismatch', 'peer uses ChaCha20-Poly1305, this side AES-256-GCM');
    if (frame[1] !== ALG_AES_GCM_256) throw new E2eError('e2e_malformed', 'unknown algorithm');
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const epoch = view.getUint32(2, false);
    const counter = view.getBigUint64(6, false);
    const header = frame.subarray(0, FRAME_HEADER_LEN);
    const sealed = frame.subarray(FRAME_HEADER_LEN);
    const now = performance.now();
    const current = this.#recv.epoch;

    if (epoch === current) return this.#open(this.#recv, counter, header, sealed);
    if (epoch < current) {
      const previous = this.#previous.find((e) => e.epoch === epoch
        && now - /** @type {number} */ (e.leftAt) < PREVIOUS_EPOCH_GRACE_MS);
      if (!previous) throw new E2eError('e2e_unknown_epoch', `unknown or expired epoch ${epoch} (current ${current})`);
      return this.#open(previous, counter, header, sealed);
    }
    if (epoch - current > MAX_EPOCH_JUMP) {
      throw new E2eError('e2e_epoch_too_far_ahead', `epoch ${epoch} too far ahead of ${current}`);
    }
    // Derive forward on the side; commit only if the frame authenticates.
    /** @type {RecvEpoch[]} */
    const skipped = [];
    let derived = await epochKeys(this.#recvNext);
    for (let e = current + 1; e < epoch; e++) {
      skipped.push({ epoch: e, keys: derived.keys, window: new ReplayWindow() });
      const chain = derived.next;
      derived = await epochKeys(chain);
      chain.fill(0);
    }
    /** @type {RecvEpoch} */
    const newest = { epoch, keys: derived.keys, window: new ReplayWindow() };
    /** @type {Uint8Array} */
    let plaintext;
    try {
      plaintext = await this.#open(newest, counter, header, sealed);
    } catch (error) {
      derived.next.fill(0);
      throw error;
    }
    const old = this.#recv;
    old.leftAt = now;
    for (const e of skipped) e.leftAt = now;
    this.#recvNext.fill(0);
    this.#recvNext = derived.next;
    this.#recv = newest;
    this.#previous.push(old, ...skipped);
    while (this.#previous.length > MAX_RETAINED_EPOCHS) this.#previous.shift();
    return plaintext;
  }

  /**
   * @param {RecvEpoch} epoch
   * @param {bigint} counter
   * @param {Uint8Array} header
   * @param {Uint8Array} sealed
   */
  async #open(epoch, counter, header, sealed) {
    epoch.window.check(epoch.epoch, counter);
    let plaintext;
    try {
      plaintext = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: nonceOf(epoch.keys.noncePrefix, counter), additionalData: /** @type {BufferSource} */ (header), tagLength: 128 },
        epoch.keys.key, /** @type {BufferSource} */ (sealed),
      );
    } catch {
      throw new E2eError('e2e_authentication_failed', 'frame authentication failed');
    }
    epoch.window.accept(counter);
    return new Uint8Array(plaintext);
  }
}

// ───────────────────────────── handshake ─────────────────────────────

/**
 * The bytes a signed key's signature covers.
 * @param {number} algorithm
 * @param {Uint8Array} share
 * @param {Uint8Array} sender peer id bytes
 * @param {Uint8Array} receiver peer id bytes
 */
function signedMessage(algorithm, share, sender, receiver) {
  return concat(SIGNATURE_LABEL, Uint8Array.of(algorithm), share, lengthPrefixed(sender), lengthPrefixed(receiver));
}

/**
 * One side of a key exchange with one peer: a fresh X25519 key pair and 32
 * random bytes, signed by this side's Ed25519 identity for that peer.
 */
export class E2eHandshake {
  /** The signed key to send to the peer ({@link SIGNED_KEY_LEN} bytes). @readonly @type {Uint8Array} */ signedKey;
  /** @type {string} */ #localPeerId;
  /** @type {string} */ #remotePeerId;
  /** @type {CryptoKey | null} X25519 private key, dropped after use */ #secret;
  /** @type {Uint8Array} */ #share;

  /**
   * @private
   * @param {symbol} token
   * @param {string} localPeerId
   * @param {string} remotePeerId
   * @param {CryptoKey} secret
   * @param {Uint8Array} share
   * @param {Uint8Array} signedKey
   */
  constructor(token, localPeerId, remotePeerId, secret, share, signedKey) {
    if (token !== HANDSHAKE) throw new TypeError('use E2eHandshake.create()');
    this.#localPeerId = localPeerId;
    this.#remotePeerId = remotePeerId;
    this.#secret = secret;
    this.#share = share;
    this.signedKey = signedKey;
  }

  /**
   * Makes this side's signed key for `remotePeerId`.
   * @param {{ identity: CryptoKeyPair, localPeerId: string, remotePeerId: string }} options
   *   `identity`: the Ed25519 key pair whose public key `localPeerId` embeds.
   * @returns {Promise<E2eHandshake>}
   */
  static async create({ identity, localPeerId, remotePeerId }) {
    if (localPeerId === remotePeerId) throw new E2eError('e2e_unsupported_peer_id', 'cannot make a session with ourselves');
    let pair;
    try {
      pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']));
    } catch (error) {
      throw new E2eError('e2e_unavailable', `WebCrypto X25519 unavailable: ${error instanceof Error ? error.message : error}`);
    }
    const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    const share = concat(publicKey, crypto.getRandomValues(new Uint8Array(32)));
    const message = signedMessage(ALG_AES_GCM_256, share, peerIdToBytes(localPeerId), peerIdToBytes(remotePeerId));
    const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, message));
    const signedKey = concat(Uint8Array.of(E2E_VERSION, ALG_AES_GCM_256), share, signature);
    return new E2eHandshake(HANDSHAKE, localPeerId, remotePeerId, pair.privateKey, share, signedKey);
  }

  /**
   * Verifies the peer's signed key against the Ed25519 key its peer id embeds
   * and derives the session. A handshake is used once.
   * @param {Uint8Array} signedKey
   * @returns {Promise<E2eSession>}
   */
  async accept(signedKey) {
    const secret = this.#secret;
    if (!secret) throw new E2eError('e2e_malformed', 'this handshake was used already');
    if (!(signedKey instanceof Uint8Array) || signedKey.length === 0) throw new E2eError('e2e_malformed', 'empty signed key');
    if (signedKey[0] !== E2E_VERSION) throw new E2eError('e2e_unsupported_version', `unsupported version ${signedKey[0]}`);
    if (signedKey.length !== SIGNED_KEY_LEN) throw new E2eError('e2e_malformed', `a signed key is ${SIGNED_KEY_LEN} bytes`);
    const algorithm = signedKey[1];
    if (algorithm !== ALG_AES_GCM_256 && algorithm !== ALG_CHACHA20_POLY1305) throw new E2eError('e2e_malformed', 'unknown algorithm');
    const theirShare = signedKey.slice(2, 2 + KEY_SHARE_LEN);
    const signature = signedKey.subarray(2 + KEY_SHARE_LEN);
    const remoteBytes = peerIdToBytes(this.#remotePeerId);
    const localBytes = peerIdToBytes(this.#localPeerId);
    const verifier = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (ed25519KeyFromPeerId(this.#remotePeerId)),
      { name: 'Ed25519' }, false, ['verify']);
    const valid = await crypto.subtle.verify({ name: 'Ed25519' }, verifier, /** @type {BufferSource} */ (signature),
      signedMessage(algorithm, theirShare, remoteBytes, localBytes));
    if (!valid) throw new E2eError('e2e_bad_signature', `the key signature of ${this.#remotePeerId} does not verify`);
    if (algorithm !== ALG_AES_GCM_256) throw new E2eError('e2e_algorithm_mismatch', 'peer uses ChaCha20-Poly1305, this side AES-256-GCM');

    this.#secret = null;
    /** @type {Uint8Array} */
    let shared;
    try {
      const theirPublic = await crypto.subtle.importKey('raw', theirShare.subarray(0, 32), { name: 'X25519' }, false, []);
      shared = new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: theirPublic }, secret, 256));
    } catch {
      // WebCrypto refuses an all-zero result (low-order public key).
      throw new E2eError('e2e_weak_key', 'the peer\'s X25519 public key is not contributory');
    }
    if (shared.every((b) => b === 0)) throw new E2eError('e2e_weak_key', 'the peer\'s X25519 public key is not contributory');

    const localIsLow = compareBytes(localBytes, remoteBytes) < 0;
    const [low, high] = localIsLow
      ? [{ id: localBytes, share: this.#share }, { id: remoteBytes, share: theirShare }]
      : [{ id: remoteBytes, share: theirShare }, { id: localBytes, share: this.#share }];
    const okm = await hkdf(concat(low.share, high.share), shared,
      concat(SESSION_LABEL, Uint8Array.of(ALG_AES_GCM_256), lengthPrefixed(low.id), lengthPrefixed(high.id)), 64);
    shared.fill(0);
    const lowToHigh = okm.slice(0, 32);
    const highToLow = okm.slice(32, 64);
    okm.fill(0);
    const [sendChain, recvChain] = localIsLow ? [lowToHigh, highToLow] : [highToLow, lowToHigh];
    const send = await epochKeys(sendChain);
    const recv = await epochKeys(recvChain);
    sendChain.fill(0);
    recvChain.fill(0);
    return E2eSession._establish(this.#remotePeerId, send, recv);
  }
}

const HANDSHAKE = Symbol('darkswap-e2e.handshake');
