// @ts-check
/**
 * The client's identity: a WebCrypto Ed25519 key pair, persisted in IndexedDB
 * with a non-extractable private key.
 * @module
 */

import { isObject } from './json.js';

/** Default IndexedDB key of the persisted identity. */
export const DEFAULT_STORAGE_KEY = 'darkswap-identity';
const IDB_NAME = 'darkswap-relay-client';
const IDB_STORE = 'identity';

/**
 * A fresh Ed25519 key pair whose private key cannot be exported.
 * @returns {Promise<CryptoKeyPair>}
 */
export async function generateIdentity() {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  return /** @type {CryptoKeyPair} */ (pair);
}

/**
 * Whether `value` is a WebCrypto Ed25519 key pair.
 * @param {unknown} value
 * @returns {value is CryptoKeyPair}
 */
export function isKeyPair(value) {
  return isObject(value) && value.privateKey instanceof CryptoKey && value.publicKey instanceof CryptoKey
    && value.privateKey.algorithm.name === 'Ed25519';
}

/** @returns {Promise<IDBDatabase>} */
function openIdentityDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(IDB_NAME, 1);
    request.onupgradeneeded = () => { request.result.createObjectStore(IDB_STORE); };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB open failed'));
    request.onblocked = () => reject(new Error('IndexedDB open blocked'));
  });
}

/**
 * Loads the Ed25519 identity stored in IndexedDB under `storageKey`, or creates,
 * stores and returns a new one (non-extractable private key). Two tabs racing on
 * the same key end up with the same identity: the store is read and written in
 * one transaction. `storageKey === null` returns a fresh ephemeral identity.
 * @param {string | null} [storageKey] default `'darkswap-identity'`
 * @returns {Promise<CryptoKeyPair>}
 */
export async function loadOrCreateIdentity(storageKey = DEFAULT_STORAGE_KEY) {
  if (storageKey === null) return generateIdentity();
  const db = await openIdentityDb();
  try {
    /** @type {unknown} */
    const stored = await new Promise((resolve, reject) => {
      const request = db.transaction(IDB_STORE, 'readonly').objectStore(IDB_STORE).get(storageKey);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    if (isKeyPair(stored)) return stored;
    const fresh = await generateIdentity();
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(IDB_STORE, 'readwrite');
      const store = tx.objectStore(IDB_STORE);
      /** @type {CryptoKeyPair} */
      let result = fresh;
      const get = store.get(storageKey);
      get.onsuccess = () => {
        if (isKeyPair(get.result)) result = get.result;
        else store.put({ privateKey: fresh.privateKey, publicKey: fresh.publicKey }, storageKey);
      };
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'));
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB write aborted'));
    });
  } finally {
    db.close();
  }
}
