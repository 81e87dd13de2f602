// @ts-check
/**
 * What a {@link WebRtcConnectionManager} knows of who is registered, as the
 * relay tells it on demand (docs/signaling.md, *Peers*): the last page of
 * peers it was given (`registered`, `list_peers`), and the peers it watches
 * (`watch`) that are registered, kept current by `peer_joined` and
 * `peer_left`. The relay announces a peer only to its watchers, so a
 * registration costs one message per watcher, not one per registered peer.
 * @module
 */

/**
 * @import { SignalingClient } from './signaling.js'
 * @import { WebRtcConnectionManager } from './manager.js'
 */

/** Peers watched at most; watching one more unwatches the one watched longest ago (the server's default limit is 256). */
const MAX_WATCHED = 128;

/** See the module docs. */
export class Presence {
  /** @type {SignalingClient} */ #signaling;
  /** @type {() => string | null} */ #self;
  /** @type {(peerId: string) => void} */ #appeared;
  /** @type {(peerId: string) => void} */ #gone;
  /** @type {Set<string>} what is reported: `#listed` and `#online` together */ #present = new Set();
  /** @type {Set<string>} the last page of peers the server gave */ #listed = new Set();
  /** @type {Set<string>} watched peers that are registered */ #online = new Set();
  /** @type {Set<string>} watched peers, oldest first */ #watched = new Set();

  /**
   * @param {{ signaling: SignalingClient, self: () => string | null,
   *   appeared: (peerId: string) => void, gone: (peerId: string) => void }} options
   *   `appeared` and `gone` are called after a peer entered or left {@link Presence#peers}
   */
  constructor({ signaling, self, appeared, gone }) {
    this.#signaling = signaling;
    this.#self = self;
    this.#appeared = appeared;
    this.#gone = gone;
  }

  /** @returns {string[]} */
  get peers() { return [...this.#present]; }

  /** @param {string} peerId */
  has(peerId) { return this.#present.has(peerId); }

  /**
   * A new first page from the server.
   * @param {string[]} list
   */
  replaceListed(list) {
    const before = this.#listed;
    this.#listed = new Set(list.filter((id) => id !== this.#self()));
    for (const peerId of new Set([...before, ...this.#listed])) this.#update(peerId);
  }

  /**
   * What the server says of watched peers: a `presence` answer, `peer_joined`, `peer_left`.
   * @param {string[]} online
   * @param {string[]} offline
   */
  update(online, offline) {
    for (const peerId of offline) {
      this.#online.delete(peerId);
      this.#listed.delete(peerId); // not registered, whatever the last page said
      this.#update(peerId);
    }
    for (const peerId of online) {
      if (!this.#watched.has(peerId)) continue; // no longer ours to follow
      this.#online.add(peerId);
      this.#update(peerId);
    }
  }

  /**
   * Watches a peer (the most recently used of at most `MAX_WATCHED`); asks the
   * server only for a peer not watched yet, or when `ask`.
   * @param {string} peerId
   * @param {boolean} [ask]
   * @returns {Promise<void>} settled when the server has answered
   */
  watch(peerId, ask = false) {
    const known = this.#watched.delete(peerId);
    this.#watched.add(peerId);
    if (this.#watched.size > MAX_WATCHED) {
      const oldest = /** @type {string} */ (this.#watched.values().next().value);
      this.#watched.delete(oldest);
      this.#online.delete(oldest);
      this.#signaling.unwatch([oldest]);
      this.#update(oldest);
    }
    return known && !ask ? Promise.resolve() : this.#signaling.watch([peerId]);
  }

  /** Watches again on a new socket: the server forgets watches with the old one. */
  rewatch() {
    this.#signaling.watch([...this.#watched]);
  }

  /** Forgets everything, without events (the manager is closing). */
  clear() {
    this.#present.clear();
    this.#listed.clear();
    this.#online.clear();
    this.#watched.clear();
  }

  /** @param {string} peerId */
  #update(peerId) {
    const present = peerId !== this.#self() && (this.#listed.has(peerId) || this.#online.has(peerId));
    if (present && !this.#present.has(peerId)) {
      this.#present.add(peerId);
      this.#appeared(peerId);
    } else if (!present && this.#present.delete(peerId)) {
      this.#gone(peerId);
    }
  }
}
