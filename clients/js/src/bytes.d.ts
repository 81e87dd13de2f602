/**
 * Bytes: concatenation, base64 and UTF-8.
 * @module
 */
export declare const textEncoder: TextEncoder;
/** Strict UTF-8: malformed input throws. */
export declare const textDecoder: TextDecoder;
/**
 * @param {Uint8Array[]} parts
 * @returns {Uint8Array<ArrayBuffer>}
 */
export declare function concatBytes(...parts: Uint8Array[]): Uint8Array<ArrayBuffer>;
/**
 * Standard base64 with padding.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export declare function base64Encode(bytes: Uint8Array): string;
/**
 * Decodes standard base64; throws if `text` is not base64.
 * @param {string} text
 * @returns {Uint8Array<ArrayBuffer>}
 */
export declare function base64Decode(text: string): Uint8Array<ArrayBuffer>;
