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
export declare const E2E_VERSION = 1;
/** Wire id of AES-256-GCM, the only algorithm WebCrypto offers of the two. */
export declare const ALG_AES_GCM_256 = 1;
/** Wire id of ChaCha20-Poly1305 (recognised, refused with `e2e_algorithm_mismatch`). */
export declare const ALG_CHACHA20_POLY1305 = 2;
export declare const FRAME_HEADER_LEN = 14;
export declare const TAG_LEN = 16;
/** Bytes a frame adds to its plaintext. */
export declare const FRAME_OVERHEAD: 30;
export declare const KEY_SHARE_LEN = 64;
/** Length of a signed key with an Ed25519 signature. */
export declare const SIGNED_KEY_LEN: 130;
export declare const REPLAY_WINDOW = 1024;
export declare const MAX_EPOCH_JUMP = 16;
export declare const MAX_RETAINED_EPOCHS = 32;
/** How long a previous receiving epoch stays usable once the peer moved on. */
export declare const PREVIOUS_EPOCH_GRACE_MS = 60000;
/**
 * Error of this module, with a machine-readable `code`: `e2e_bad_signature`,
 * `e2e_malformed`, `e2e_unsupported_version`, `e2e_algorithm_mismatch`,
 * `e2e_unsupported_peer_id`, `e2e_weak_key`, `e2e_authentication_failed`,
 * `e2e_replay`, `e2e_too_old`, `e2e_unknown_epoch`, `e2e_epoch_too_far_ahead`,
 * `e2e_counter_exhausted`, `e2e_epoch_exhausted`, `e2e_unavailable`.
 */
export declare class E2eError extends Error {
    /** @type {string} */
    code: string;
    /**
     * @param {string} code
     * @param {string} message
     */
    constructor(code: string, message: string);
}
/**
 * The binary form of a libp2p peer id (its multihash), from its base58 text.
 * @param {string} peerId
 * @returns {Uint8Array}
 */
export declare function peerIdToBytes(peerId: string): Uint8Array;
/**
 * The raw Ed25519 public key a peer id embeds (identity multihash `00 24` of
 * the protobuf `08 01 12 20 || key`).
 * @param {string} peerId
 * @returns {Uint8Array}
 */
export declare function ed25519KeyFromPeerId(peerId: string): Uint8Array;
export type EpochKeys = {
    /**
     * AES-256-GCM, non-extractable
     */
    key: CryptoKey;
    /**
     * 4 bytes
     */
    noncePrefix: Uint8Array;
};
/** Accepted counters of one epoch: the highest, and a bitmap of the window below it (RFC 6479). */
declare class ReplayWindow {
    #private;
    /** @type {bigint | null} */ highest: bigint | null;
    bits: Uint32Array<ArrayBuffer>;
    /**
     * @param {number} epoch
     * @param {bigint} counter
     */
    check(epoch: number, counter: bigint): void;
    /** @param {bigint} counter */
    accept(counter: bigint): void;
}
export type RecvEpoch = {
    epoch: number;
    keys: EpochKeys;
    window: ReplayWindow;
    /**
     * when the peer moved past it (`performance.now()`)
     */
    leftAt?: number;
};
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
export declare class E2eSession {
    #private;
    /** The peer this session is with. @readonly @type {string} */ readonly remotePeerId: string;
    /**
     * @private
     * @param {string} remotePeerId
     * @param {{ keys: EpochKeys, next: Uint8Array }} send
     * @param {{ keys: EpochKeys, next: Uint8Array }} recv
     */
    private constructor();
    /** Current sending epoch. */
    get epoch(): number;
    /**
     * Encrypts one message into a frame.
     * @param {Uint8Array} plaintext
     * @returns {Promise<Uint8Array>}
     */
    encrypt(plaintext: Uint8Array): Promise<Uint8Array>;
    /**
     * Moves sending to the next epoch if the current one has been used (see the
     * Rust `rotate_keys`); the previous chain key is overwritten.
     * @returns {Promise<void>}
     */
    rotate(): Promise<void>;
    /**
     * Decrypts a frame of the peer. Rejects with an {@link E2eError}; the session
     * is unchanged unless the frame authenticates.
     * @param {Uint8Array} frame
     * @returns {Promise<Uint8Array>}
     */
    decrypt(frame: Uint8Array): Promise<Uint8Array>;
    /** Drops previous receiving epochs whose grace period is over. */
    prune(now?: number): void;
}
/**
 * One side of a key exchange with one peer: a fresh X25519 key pair and 32
 * random bytes, signed by this side's Ed25519 identity for that peer.
 */
export declare class E2eHandshake {
    #private;
    /** The signed key to send to the peer ({@link SIGNED_KEY_LEN} bytes). @readonly @type {Uint8Array} */ readonly signedKey: Uint8Array;
    /**
     * @private
     * @param {symbol} token
     * @param {string} localPeerId
     * @param {string} remotePeerId
     * @param {CryptoKey} secret
     * @param {Uint8Array} share
     * @param {Uint8Array} signedKey
     */
    private constructor();
    /**
     * Makes this side's signed key for `remotePeerId`.
     * @param {{ identity: CryptoKeyPair, localPeerId: string, remotePeerId: string }} options
     *   `identity`: the Ed25519 key pair whose public key `localPeerId` embeds.
     * @returns {Promise<E2eHandshake>}
     */
    static create({ identity, localPeerId, remotePeerId }: {
        identity: CryptoKeyPair;
        localPeerId: string;
        remotePeerId: string;
    }): Promise<E2eHandshake>;
    /**
     * Verifies the peer's signed key against the Ed25519 key its peer id embeds
     * and derives the session. A handshake is used once.
     * @param {Uint8Array} signedKey
     * @returns {Promise<E2eSession>}
     */
    accept(signedKey: Uint8Array): Promise<E2eSession>;
}
export {};
