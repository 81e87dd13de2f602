/**
 * libp2p peer ids of Ed25519 keys (`12D3KooW...`): base58btc of the identity
 * multihash of the key's protobuf encoding.
 * @module
 */
/**
 * The bytes of a libp2p peer id (its multihash), as the relay signs them
 * into a token challenge; `null` if `peerId` is not one.
 * @param {unknown} peerId
 * @returns {Uint8Array | null}
 */
export declare function peerIdBytes(peerId: unknown): Uint8Array | null;
/**
 * libp2p protobuf encoding of an Ed25519 public key: `08 01 12 20 || key`.
 * @param {Uint8Array} raw the 32 raw public key bytes
 * @returns {Uint8Array<ArrayBuffer>}
 */
export declare function ed25519PublicKeyProtobuf(raw: Uint8Array): Uint8Array<ArrayBuffer>;
/**
 * Derives the libp2p peer id (`12D3KooW...`) of an Ed25519 public key: base58btc
 * of the identity multihash (`00 24`) of the key's protobuf encoding (`08 01 12 20 || key`).
 * @param {Uint8Array} rawEd25519PublicKey the 32 raw public key bytes
 * @returns {string}
 */
export declare function peerIdFromPublicKey(rawEd25519PublicKey: Uint8Array): string;
