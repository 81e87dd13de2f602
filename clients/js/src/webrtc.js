// @ts-check
/**
 * The direct path of a connection: one WebRTC attempt, an `RTCPeerConnection`
 * with one data channel labelled `darkswap`, negotiated through the signaling
 * server (offer, answer and trickled ICE candidates, tagged with a session id
 * so that a late message of an earlier attempt is ignored).
 *
 * The offering side creates the data channel; the answering side takes the
 * first channel with our label. Either side gives up after its timeout (the
 * answering side allows a grace period more), and the offering side also
 * when the browser gathers no local candidate at all; what happens then is
 * the connection's decision (the offering side falls back to a circuit).
 * @module
 */

import { base64Encode, textEncoder } from './bytes.js';
import { describe, makeError } from './errors.js';
import { isObject } from './json.js';
import { SEND_HIGH_WATER } from './message.js';

/**
 * @import { ConnectionState } from './connection.js'
 * @import { EncodedMessage } from './message.js'
 */

/** Label of the data channel the offering side creates. */
const DATA_CHANNEL_LABEL = 'darkswap';
/** Extra time the answering side gives a WebRTC attempt beyond `iceTimeoutMs`. */
const ANSWERER_GRACE_MS = 2_000;
const MAX_PENDING_CANDIDATES = 64;
/** A data channel signals `bufferedamountlow` below this. */
const SEND_LOW_WATER = 256 * 1024;

/**
 * What a WebRTC attempt reads from, and reports to, the connection it works for.
 * @typedef {object} DirectOwner
 * @property {string} peerId the remote peer
 * @property {RTCConfiguration} rtcConfig
 * @property {number} iceTimeoutMs
 * @property {() => ConnectionState} state the connection's state
 * @property {(message: Record<string, unknown>) => boolean} sendSignal
 * @property {() => void} open the data channel opened while the connection was connecting
 * @property {(attempt: DirectAttempt, code: string, message: string) => void} failed the attempt cannot (or can no longer) carry the connection
 * @property {(message: unknown) => void} deliver a message arrived
 * @property {(code: string, message: string) => void} error a local failure worth an `error` event
 */

/** A random URL-safe id (16 bytes of entropy). */
export function randomId() {
  return base64Encode(crypto.getRandomValues(new Uint8Array(16)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** One WebRTC attempt with one peer; stopped for good by {@link DirectAttempt#stop}. */
export class DirectAttempt {
  /** @readonly @type {RTCPeerConnection} */ pc;
  /** @type {RTCDataChannel | null} */ dc = null;
  /** Tags this attempt's offer, answer and candidates. @readonly @type {string | undefined} */ session;
  /** This side sent the offer. @readonly @type {boolean} */ offerer;
  /** @type {DirectOwner} */ #owner;
  #stopped = false;
  /** remote description applied */ #remoteSet = false;
  /** offer/answer sent (local candidates may follow) */ #localSent = false;
  /** @type {RTCIceCandidateInit[]} received before the remote description */ #remoteCandidates = [];
  /** @type {(RTCIceCandidateInit | null)[]} gathered before the offer/answer was sent */ #localCandidates = [];
  /** local candidates gathered so far */ #gathered = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */ #timer = null;

  /**
   * Makes the peer connection and arms the attempt's timeout; throws if the
   * browser cannot make one (WebRTC disabled, invalid `rtcConfig`).
   * @param {DirectOwner} owner
   * @param {boolean} offerer
   * @param {string | undefined} session
   */
  constructor(owner, offerer, session) {
    const pc = new RTCPeerConnection(owner.rtcConfig);
    this.pc = pc;
    this.session = session;
    this.offerer = offerer;
    this.#owner = owner;
    const timeout = owner.iceTimeoutMs + (offerer ? 0 : ANSWERER_GRACE_MS);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#stopped && owner.state() === 'connecting') {
        this.#fail('ice_timeout', `no data channel within ${timeout} ms`);
      }
    }, timeout);
    pc.onicecandidate = (event) => {
      if (this.#stopped) return;
      const candidate = event.candidate ? event.candidate.toJSON() : null;
      if (candidate) this.#gathered++;
      if (this.#localSent) this.#sendCandidate(candidate);
      else if (this.#localCandidates.length < MAX_PENDING_CANDIDATES) this.#localCandidates.push(candidate);
    };
    pc.onicegatheringstatechange = () => {
      // With no local candidate at all (e.g. iceTransportPolicy 'relay' and no
      // TURN server) WebRTC cannot succeed: the offering side falls back now.
      if (!this.#stopped && pc.iceGatheringState === 'complete' && this.#gathered === 0
        && this.offerer && owner.state() === 'connecting') {
        this.#fail('no_candidates', 'no local ICE candidate');
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.#stopped) return;
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        this.#fail('ice_failed', `peer connection ${pc.connectionState}`);
      }
    };
  }

  /** Offering side: creates the data channel (throws if the browser cannot). */
  createDataChannel() {
    this.#bindDataChannel(this.pc.createDataChannel(DATA_CHANNEL_LABEL));
  }

  /** Offering side: creates the offer and sends it. */
  async offer() {
    const { pc } = this;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      if (this.#stopped) return;
      this.#sendDescription('offer');
    } catch (error) {
      this.#fail('webrtc_error', describe(error));
    }
  }

  /**
   * Answering side: applies the peer's offer and sends our answer.
   * @param {string} sdp
   */
  async answer(sdp) {
    const { pc } = this;
    pc.ondatachannel = (event) => {
      if (this.#stopped || event.channel.label !== DATA_CHANNEL_LABEL || this.dc) {
        event.channel.close();
        return;
      }
      this.#bindDataChannel(event.channel);
    };
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      if (this.#stopped) return;
      this.#remoteSet = true;
      await this.#flushRemoteCandidates();
      if (this.#stopped) return;
      await pc.setLocalDescription(await pc.createAnswer());
      if (this.#stopped) return;
      this.#sendDescription('answer');
    } catch (error) {
      this.#fail('webrtc_error', describe(error));
    }
  }

  /**
   * The peer's answer to our offer (ignored unless it answers this attempt's offer).
   * @param {string} sdp
   * @param {string | undefined} session
   */
  async handleAnswer(sdp, session) {
    if (!this.offerer || this.#remoteSet || this.session !== session) return;
    if (this.pc.signalingState !== 'have-local-offer') return;
    try {
      this.#remoteSet = true;
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      if (this.#stopped) return;
      await this.#flushRemoteCandidates();
    } catch (error) {
      this.#fail('webrtc_error', describe(error));
    }
  }

  /**
   * A remote ICE candidate of this attempt; kept until the remote description is applied.
   * @param {unknown} candidate `RTCIceCandidateInit` or `null` (end of candidates)
   * @param {string | undefined} session
   */
  async handleCandidate(candidate, session) {
    if (this.session !== session || !isObject(candidate)) return;
    const init = /** @type {RTCIceCandidateInit} */ (candidate);
    if (!this.#remoteSet) {
      if (this.#remoteCandidates.length < MAX_PENDING_CANDIDATES) this.#remoteCandidates.push(init);
      return;
    }
    try {
      await this.pc.addIceCandidate(init);
    } catch {
      // A candidate the browser cannot use (other address family, stale ufrag): skip it.
    }
  }

  /**
   * Sends one message on the data channel, waiting while its buffer is full.
   * @param {EncodedMessage} encoded
   * @returns {Promise<void>}
   */
  async send(encoded) {
    const dc = this.dc;
    if (!dc) throw makeError('not_open', 'connection closed');
    const size = 'bytes' in encoded ? encoded.bytes.byteLength : textEncoder.encode(encoded.text).byteLength;
    const limit = this.pc.sctp?.maxMessageSize ?? 0;
    if (limit > 0 && size > limit) throw makeError('message_too_large', `${size} bytes exceed ${limit}`);
    await drain(dc);
    if (this.#owner.state() !== 'open' || dc.readyState !== 'open') throw makeError('not_open', 'connection closed');
    if ('bytes' in encoded) dc.send(/** @type {Uint8Array<ArrayBuffer>} */ (encoded.bytes));
    else dc.send(encoded.text);
  }

  /**
   * `currentRoundTripTime` (ms) of the selected candidate pair, or `null`.
   * @returns {Promise<number | null>}
   */
  async rtt() {
    const { pc } = this;
    /** @type {RTCStatsReport} */
    let stats;
    try { stats = await pc.getStats(); } catch { return null; }
    let pair = /** @type {RTCIceCandidatePairStats | null} */ (null);
    for (const report of stats.values()) {
      if (report.type === 'transport' && report.selectedCandidatePairId && !pair) {
        pair = stats.get(report.selectedCandidatePairId) ?? null;
      }
    }
    if (!pair) {
      for (const report of stats.values()) {
        if (report.type === 'candidate-pair' && !pair && (report.selected || (report.nominated && report.state === 'succeeded'))) {
          pair = report;
        }
      }
    }
    return pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : null;
  }

  /** The connection opened: the timeout no longer applies. */
  opened() {
    if (this.#timer) { clearTimeout(this.#timer); this.#timer = null; }
  }

  /** Closes the data channel and the peer connection; nothing of this attempt is reported any more. */
  stop() {
    this.#stopped = true;
    const { pc, dc } = this;
    if (this.#timer) clearTimeout(this.#timer);
    pc.onicecandidate = null;
    pc.onicegatheringstatechange = null;
    pc.onconnectionstatechange = null;
    pc.ondatachannel = null;
    if (dc) {
      dc.onopen = dc.onclose = dc.onmessage = null;
      try { dc.close(); } catch { /* already closed */ }
    }
    try { pc.close(); } catch { /* already closed */ }
  }

  /**
   * @param {string} code
   * @param {string} message
   */
  #fail(code, message) {
    if (!this.#stopped) this.#owner.failed(this, code, message);
  }

  async #flushRemoteCandidates() {
    while (this.#remoteCandidates.length > 0 && !this.#stopped) {
      const init = /** @type {RTCIceCandidateInit} */ (this.#remoteCandidates.shift());
      try { await this.pc.addIceCandidate(init); } catch { /* skip unusable candidate */ }
    }
  }

  /** @param {'offer' | 'answer'} type */
  #sendDescription(type) {
    const sdp = this.pc.localDescription?.sdp ?? '';
    /** @type {Record<string, unknown>} */
    const message = { type, to: this.#owner.peerId, sdp };
    if (this.session !== undefined) message.session = this.session;
    if (!this.#owner.sendSignal(message)) {
      this.#fail('signaling_unavailable', `cannot send ${type}: signaling is not connected`);
      return;
    }
    this.#localSent = true;
    for (const candidate of this.#localCandidates.splice(0)) this.#sendCandidate(candidate);
  }

  /** @param {RTCIceCandidateInit | null} candidate */
  #sendCandidate(candidate) {
    /** @type {Record<string, unknown>} */
    const message = { type: 'candidate', to: this.#owner.peerId, candidate };
    if (this.session !== undefined) message.session = this.session;
    this.#owner.sendSignal(message);
  }

  /** @param {RTCDataChannel} dc */
  #bindDataChannel(dc) {
    const owner = this.#owner;
    this.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = SEND_LOW_WATER;
    dc.onopen = () => {
      if (!this.#stopped && owner.state() === 'connecting') owner.open();
    };
    dc.onclose = () => {
      this.#fail('channel_closed', 'data channel closed');
    };
    dc.onmessage = (event) => {
      if (this.#stopped || owner.state() !== 'open') return;
      if (typeof event.data === 'string') {
        /** @type {unknown} */
        let message;
        try { message = JSON.parse(event.data); } catch {
          owner.error('invalid_payload', `non-JSON text from ${owner.peerId}`);
          return;
        }
        owner.deliver(message);
      } else if (event.data instanceof ArrayBuffer) {
        owner.deliver(new Uint8Array(event.data));
      }
    };
    if (dc.readyState === 'open' && owner.state() === 'connecting') owner.open();
  }
}

/**
 * Waits while the data channel's buffer is over the high-water mark.
 * @param {RTCDataChannel} dc
 */
async function drain(dc) {
  if (dc.bufferedAmount <= SEND_HIGH_WATER) return;
  await new Promise((resolve) => {
    const done = () => {
      dc.removeEventListener('bufferedamountlow', done);
      dc.removeEventListener('close', done);
      resolve(undefined);
    };
    dc.addEventListener('bufferedamountlow', done);
    dc.addEventListener('close', done);
  });
}
