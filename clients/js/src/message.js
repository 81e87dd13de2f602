// @ts-check
/**
 * Application messages as both transports carry them: bytes as binary,
 * anything else as JSON text; and how much may wait in a transport's send
 * buffer before a sender waits.
 * @module
 */

/** A send waits while a transport's buffer holds more than this. */
export const SEND_HIGH_WATER = 1024 * 1024;

/**
 * An outgoing message, encoded.
 * @typedef {{ text: string } | { bytes: Uint8Array }} EncodedMessage
 */

/**
 * Encodes an outgoing message: bytes stay bytes, anything else becomes JSON text.
 * @param {unknown} message
 * @returns {EncodedMessage}
 */
export function encodeMessage(message) {
  if (message instanceof Uint8Array) return { bytes: message };
  if (message instanceof ArrayBuffer) return { bytes: new Uint8Array(message) };
  if (ArrayBuffer.isView(message)) {
    return { bytes: new Uint8Array(message.buffer, message.byteOffset, message.byteLength) };
  }
  const text = JSON.stringify(message);
  if (typeof text !== 'string') throw new TypeError('message is not JSON-serialisable');
  return { text };
}
