// @ts-check
/**
 * A promise together with its `resolve` and `reject`.
 * @module
 */

/**
 * @template T
 * @typedef {{ promise: Promise<T>, resolve: (value: T) => void, reject: (error: Error) => void }} Deferred
 */

/**
 * A deferred whose rejection is never reported as unhandled (callers that
 * await `promise` still see it).
 * @template T
 * @returns {Deferred<T>}
 */
export function deferred() {
  /** @type {(value: T) => void} */ let resolve = () => {};
  /** @type {(error: Error) => void} */ let reject = () => {};
  /** @type {Promise<T>} */
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {});
  return { promise, resolve, reject };
}
