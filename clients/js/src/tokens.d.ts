/**
 * Relay tokens (docs/signaling.md, Tokens): JWTs of the relay's token service,
 * earned by signing a challenge with the identity key (`fetchRelayToken`),
 * traded for fresh ones (`refreshRelayToken`), and held for the signaling
 * socket by a {@link TokenKeeper}. Tokens are bearer credentials: nothing
 * here logs them.
 * @module
 */
import type { DarkSwapError } from './errors.js';
export type RelayToken = {
    /**
     * the JWT
     */
    token: string;
    /**
     * `'guest'`, `'user'` or `'admin'`
     */
    role: string;
    /**
     * unix seconds (the relay's clock) after which the relay refuses it
     */
    expiresAt: number;
};
export type RelayTokenError = DarkSwapError & {
    status: number;
    retryAfterMs?: number;
};
export type TokenProvider = (request: {
    peerId: string;
}) => string | Promise<string>;
export type TokenEventDetail = {
    /**
     * `'guest'`, `'user'` or `'admin'`
     */
    role: string;
    /**
     * unix seconds (the relay's clock)
     */
    expiresAt: number;
    /**
     * earned with a signed challenge, or traded for the previous token
     */
    via: 'challenge' | 'refresh';
};
export type HeldToken = RelayToken & {
    refreshAt: number;
    deadline: number;
};
/**
 * A failure worth retrying later: no answer, rate limited, or a server error.
 * @param {unknown} error
 * @returns {boolean}
 */
export declare function isTransientAuthError(error: unknown): boolean;
/**
 * Earns a token from the relay's token service: asks `/auth/challenge` for a
 * challenge, signs `"darkswap-relay/v1/auth-token" || relay peer id bytes ||
 * challenge` with the identity key, and trades the signature at `/auth/token`.
 * The token's role is whatever the relay's configuration gives this peer id.
 * Rejects with a {@link RelayTokenError} whose `code` is the service's
 * (`bad_proof`, `unknown_challenge`, `rate_limited` with `retryAfterMs`, ...)
 * or `auth_unavailable`. Never logs the token.
 * @param {{ signalingUrl?: string, authUrl?: string, identity: CryptoKeyPair }} options
 *   `identity` is the WebCrypto Ed25519 key pair the client registers with;
 *   `authUrl` defaults to `signalingUrl` with `ws(s):` → `http(s):` and `/signaling` → `/auth`.
 * @returns {Promise<RelayToken>}
 */
export declare function fetchRelayToken(options: {
    signalingUrl?: string;
    authUrl?: string;
    identity: CryptoKeyPair;
}): Promise<RelayToken>;
/**
 * Trades a valid token for a fresh one (`POST /auth/refresh`); the relay
 * revokes the old one, which closes a `/signaling` socket that showed it.
 * Rejects like {@link fetchRelayToken} (`expired`, `revoked`, ... once the
 * old token is no longer valid: earn a new one then).
 * @param {{ signalingUrl?: string, authUrl?: string, token: string }} options
 * @returns {Promise<RelayToken>}
 */
export declare function refreshRelayToken(options: {
    signalingUrl?: string;
    authUrl?: string;
    token: string;
}): Promise<RelayToken>;
/**
 * The relay's own STUN and TURN servers (`POST /auth/ice-servers`): its STUN
 * server, and its TURN server with time-limited credentials minted for the
 * token's peer (coturn's REST scheme), ready for `RTCConfiguration.iceServers`.
 * Rejects like {@link fetchRelayToken}; `not_enabled` when the relay serves
 * no STUN/TURN, `forbidden` for a role the relay gives no TURN credentials.
 * @param {{ signalingUrl?: string, authUrl?: string, token: string }} options
 * @returns {Promise<{ iceServers: RTCIceServer[], expiresAt: number }>} `expiresAt` in unix seconds
 */
export declare function fetchIceServers(options: {
    signalingUrl?: string;
    authUrl?: string;
    token: string;
}): Promise<{
    iceServers: RTCIceServer[];
    expiresAt: number;
}>;
export type TokenKeeperOptions = {
    /**
     * `'auto'` earns tokens; a provider is asked for them
     */
    auth: 'auto' | TokenProvider;
    signalingUrl: string;
    /**
     * base of the token service; `null`: derived from `signalingUrl` on first use
     */
    authUrl: string | null;
    /**
     * the key tokens are earned with, once loaded
     */
    identity: () => CryptoKeyPair | null;
    /**
     * `'auto'` earned or refreshed a token
     */
    onToken: (detail: TokenEventDetail) => void;
    /**
     * a scheduled refresh failed
     */
    onError: (code: string, message: string) => void;
};
/**
 * What a {@link TokenKeeper} is made of.
 * @typedef {object} TokenKeeperOptions
 * @property {'auto' | TokenProvider} auth `'auto'` earns tokens; a provider is asked for them
 * @property {string} signalingUrl
 * @property {string | null} authUrl base of the token service; `null`: derived from `signalingUrl` on first use
 * @property {() => CryptoKeyPair | null} identity the key tokens are earned with, once loaded
 * @property {(detail: TokenEventDetail) => void} onToken `'auto'` earned or refreshed a token
 * @property {(code: string, message: string) => void} onError a scheduled refresh failed
 */
/**
 * The token the signaling socket shows, for `auth: 'auto'` or a
 * {@link TokenProvider}. With `'auto'` it earns a token with the identity key,
 * refreshes it after 3/4 of its lifetime (the relay then revokes the old one)
 * and earns a new one when the held one can no longer be refreshed; one
 * request at a time.
 */
export declare class TokenKeeper {
    #private;
    /** @param {TokenKeeperOptions} options */
    constructor({ auth, signalingUrl, authUrl, identity, onToken, onError }: TokenKeeperOptions);
    /**
     * The token for a new socket; `fresh` if it was earned (or supplied) for it
     * rather than kept from before.
     * @param {string} peerId who the socket registers as
     * @returns {Promise<{ token: string, fresh: boolean }>}
     */
    forSocket(peerId: string): Promise<{
        token: string;
        fresh: boolean;
    }>;
    /**
     * Whether a socket closed with 4004 failed for a reason a new token cures.
     * @param {string} token the token the socket showed
     * @param {boolean} fresh it was earned or supplied for that socket
     * @param {string} reason close reason
     * @param {string | null} authMessage the server's `unauthorized` error, if it sent one
     * @returns {boolean}
     */
    renewable(token: string, fresh: boolean, reason: string, authMessage: string | null): boolean;
    /**
     * Drops `token` if it is the one held, so that the next socket gets a new one.
     * @param {string} token
     */
    forget(token: string): void;
    /** Stops the scheduled refresh (the token, if any, stays held). */
    stopRefreshing(): void;
    /** Stops refreshing and drops the token; requests under way fail with `closed`. */
    close(): void;
}
