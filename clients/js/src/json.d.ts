/**
 * Guards for values parsed from JSON (signaling messages, token service
 * answers), which arrive untyped.
 * @module
 */
/**
 * A plain object (not `null`, not an array).
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
export declare function isObject(value: unknown): value is Record<string, unknown>;
/**
 * @param {unknown} value
 * @returns {value is string}
 */
export declare function isNonEmptyString(value: unknown): value is string;
