/**
 * Application messages as both transports carry them: bytes as binary,
 * anything else as JSON text; and how much may wait in a transport's send
 * buffer before a sender waits.
 * @module
 */
/** A send waits while a transport's buffer holds more than this. */
export declare const SEND_HIGH_WATER: number;
export type EncodedMessage = {
    text: string;
} | {
    bytes: Uint8Array;
};
/**
 * An outgoing message, encoded.
 * @typedef {{ text: string } | { bytes: Uint8Array }} EncodedMessage
 */
/**
 * Encodes an outgoing message: bytes stay bytes, anything else becomes JSON text.
 * @param {unknown} message
 * @returns {EncodedMessage}
 */
export declare function encodeMessage(message: unknown): EncodedMessage;
