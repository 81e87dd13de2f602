// Type declarations for darkswap-e2e.js (docs/security-encryption.md).

export const E2E_VERSION: 1;
export const ALG_AES_GCM_256: 1;
export const ALG_CHACHA20_POLY1305: 2;
export const FRAME_HEADER_LEN: 14;
export const TAG_LEN: 16;
/** Bytes a frame adds to its plaintext. */
export const FRAME_OVERHEAD: 30;
export const KEY_SHARE_LEN: 64;
/** Length of a signed key with an Ed25519 signature. */
export const SIGNED_KEY_LEN: 130;
export const REPLAY_WINDOW: 1024;
export const MAX_EPOCH_JUMP: 16;
export const MAX_RETAINED_EPOCHS: 32;
export const PREVIOUS_EPOCH_GRACE_MS: 60000;

/**
 * `code`: `e2e_bad_signature`, `e2e_malformed`, `e2e_unsupported_version`,
 * `e2e_algorithm_mismatch`, `e2e_unsupported_peer_id`, `e2e_weak_key`,
 * `e2e_authentication_failed`, `e2e_replay`, `e2e_too_old`,
 * `e2e_unknown_epoch`, `e2e_epoch_too_far_ahead`, `e2e_counter_exhausted`,
 * `e2e_epoch_exhausted`, `e2e_unavailable`.
 */
export class E2eError extends Error {
  constructor(code: string, message: string);
  code: string;
}

/** The binary multihash of a base58 libp2p peer id. */
export function peerIdToBytes(peerId: string): Uint8Array;
/** The raw 32-byte Ed25519 key an Ed25519 peer id embeds. */
export function ed25519KeyFromPeerId(peerId: string): Uint8Array;

/** One side of a key exchange with one peer. */
export class E2eHandshake {
  private constructor();
  /** This side's signed key, to send to the peer. */
  readonly signedKey: Uint8Array;
  /** `identity`: the Ed25519 key pair whose public key `localPeerId` embeds. */
  static create(options: { identity: CryptoKeyPair; localPeerId: string; remotePeerId: string }): Promise<E2eHandshake>;
  /** Verifies the peer's signed key and derives the session (once). */
  accept(signedKey: Uint8Array): Promise<E2eSession>;
}

/** An established session with one peer (AES-256-GCM). */
export class E2eSession {
  private constructor();
  readonly remotePeerId: string;
  /** Current sending epoch. */
  readonly epoch: number;
  encrypt(plaintext: Uint8Array): Promise<Uint8Array>;
  /** Rejects with an {@link E2eError}; the session is unchanged unless the frame authenticates. */
  decrypt(frame: Uint8Array): Promise<Uint8Array>;
  /** Moves sending to the next epoch (if the current one has been used). */
  rotate(): Promise<void>;
  /** Drops previous receiving epochs whose grace period is over (`now`: `performance.now()` time). */
  prune(now?: number): void;
}
