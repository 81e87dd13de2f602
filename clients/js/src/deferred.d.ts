/**
 * A promise together with its `resolve` and `reject`.
 * @module
 */
export type Deferred<T> = {
    promise: Promise<T>;
    resolve: (value: T) => void;
    reject: (error: Error) => void;
};
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
export declare function deferred<T>(): Deferred<T>;
