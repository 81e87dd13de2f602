// @ts-check
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
export function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * @param {unknown} value
 * @returns {value is string}
 */
export function isNonEmptyString(value) {
  return typeof value === 'string' && value.length > 0;
}
