/**
 * The client's identity: a WebCrypto Ed25519 key pair, persisted in IndexedDB
 * with a non-extractable private key.
 * @module
 */
/** Default IndexedDB key of the persisted identity. */
export declare const DEFAULT_STORAGE_KEY = "darkswap-identity";
/**
 * A fresh Ed25519 key pair whose private key cannot be exported.
 * @returns {Promise<CryptoKeyPair>}
 */
export declare function generateIdentity(): Promise<CryptoKeyPair>;
/**
 * Whether `value` is a WebCrypto Ed25519 key pair.
 * @param {unknown} value
 * @returns {value is CryptoKeyPair}
 */
export declare function isKeyPair(value: unknown): value is CryptoKeyPair;
/**
 * Loads the Ed25519 identity stored in IndexedDB under `storageKey`, or creates,
 * stores and returns a new one (non-extractable private key). Two tabs racing on
 * the same key end up with the same identity: the store is read and written in
 * one transaction. `storageKey === null` returns a fresh ephemeral identity.
 * @param {string | null} [storageKey] default `'darkswap-identity'`
 * @returns {Promise<CryptoKeyPair>}
 */
export declare function loadOrCreateIdentity(storageKey?: string | null): Promise<CryptoKeyPair>;
