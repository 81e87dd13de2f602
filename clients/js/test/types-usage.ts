// What a TypeScript user of the client writes, compiled by
// scripts/check-types.sh against the generated declarations (never run; the
// code sits in a function nobody calls). It fails the check if a declaration
// file is broken or a public type loses precision.
import {
  WebRtcConnection, WebRtcConnectionManager, fetchRelayToken, loadOrCreateIdentity, peerIdFromPublicKey, refreshRelayToken,
} from '../darkswap-relay-client.js';
import type {
  ConnectionPath, ConnectionQuality, ConnectionState, DarkSwapError, ManagerOptions, PeerPage, RelayToken, RelayTokenError,
  SignalingState, TokenProvider, WebRtcConnectionManagerEventMap,
} from '../darkswap-relay-client.js';
import { E2eError, E2eHandshake, E2eSession, FRAME_OVERHEAD, SIGNED_KEY_LEN } from '../darkswap-e2e.js';

/** `true` only if `A` and `B` are the same type. */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function expectType<T extends true>(): void {}

export async function usage(): Promise<void> {
  const provider: TokenProvider = ({ peerId }) => `token-for-${peerId}`;
  const options: ManagerOptions = {
    signalingUrl: 'wss://relay.example/signaling',
    storageKey: null,
    rtcConfig: { iceServers: [] },
    acceptRelayed: (peerId) => peerId.startsWith('12D3KooW'),
    auth: provider,
  };
  const manager = new WebRtcConnectionManager(options);
  const page = await manager.listPeers({ after: '12D3KooW', limit: 10 });
  expectType<Equals<typeof page, PeerPage | null>>();
  if (page) expectType<Equals<typeof page.next, string | null>>();
  expectType<Equals<Awaited<ReturnType<typeof manager.refreshPeers>>, string[]>>();
  new WebRtcConnectionManager({ signalingUrl: 'ws://127.0.0.1:9001/signaling', auth: 'auto' });
  // @ts-expect-error auth is 'none', 'auto' or a function
  new WebRtcConnectionManager({ signalingUrl: 'ws://127.0.0.1:9001/signaling', auth: 'sometimes' });

  manager.addEventListener('registered', (event) => {
    expectType<Equals<typeof event.detail, { peerId: string; peers: string[] }>>();
  });
  manager.addEventListener('connection-state', (event) => {
    const { peerId, state, path, code } = event.detail;
    expectType<Equals<typeof peerId, string>>();
    expectType<Equals<typeof state, 'connecting' | 'open' | 'closed'>>();
    expectType<Equals<typeof state, ConnectionState>>();
    expectType<Equals<typeof path, 'direct' | 'relayed'>>();
    expectType<Equals<typeof path, ConnectionPath>>();
    expectType<Equals<typeof code, string | undefined>>();
  });
  manager.addEventListener('connection', (event) => {
    expectType<Equals<typeof event.detail.connection, WebRtcConnection>>();
  });
  manager.addEventListener('message', (event) => {
    expectType<Equals<typeof event.detail.message, unknown>>();
  });
  manager.addEventListener('signaling-state', (event) => {
    expectType<Equals<typeof event.detail.state, 'connecting' | 'open' | 'closed'>>();
    expectType<Equals<typeof event.detail.state, SignalingState>>();
  });
  manager.addEventListener('token', (event) => {
    expectType<Equals<typeof event.detail.via, 'challenge' | 'refresh'>>();
    // @ts-expect-error the token itself is never in the event
    void event.detail.token;
  });
  const onError = (event: WebRtcConnectionManagerEventMap['error']) => {
    expectType<Equals<typeof event.detail, { code: string; message: string }>>();
  };
  manager.addEventListener('error', onError);
  manager.removeEventListener('error', onError);
  manager.addEventListener('some-other-event', (event: Event) => { void event; });

  await manager.init();
  expectType<Equals<typeof manager.peerId, string | null>>();
  expectType<Equals<typeof manager.peers, string[]>>();
  const off = manager.onMessage((peerId, message) => { void peerId; void message; });
  off();
  const conn = await manager.connect(manager.peers[0]);
  expectType<Equals<typeof conn, WebRtcConnection>>();
  const quality: ConnectionQuality = await conn.getQuality();
  expectType<Equals<typeof quality.rtt, number | null>>();
  expectType<Equals<typeof quality.path, 'direct' | 'relayed'>>();
  expectType<Equals<typeof conn.initiator, boolean>>();
  await conn.send({ hello: 'world' });
  await manager.sendMessage(conn.peerId, new Uint8Array([1, 2]));
  expectType<Equals<typeof manager.getConnection, (peerId: string) => WebRtcConnection | undefined>>();
  // @ts-expect-error the state is the connection's to change
  conn.state = 'open';
  // @ts-expect-error connections are made by the manager
  new WebRtcConnection();
  await manager.closeConnection(conn.peerId);
  await manager.close();

  try {
    await manager.init();
  } catch (error) {
    const { code } = error as DarkSwapError;
    expectType<Equals<typeof code, string>>();
  }

  const identity: CryptoKeyPair = await loadOrCreateIdentity(null);
  const peerId: string = peerIdFromPublicKey(new Uint8Array(32));
  const token: RelayToken = await fetchRelayToken({ signalingUrl: 'ws://127.0.0.1:9001/signaling', identity });
  await refreshRelayToken({ authUrl: 'http://127.0.0.1:9001/auth', token: token.token });
  try {
    await fetchRelayToken({ authUrl: 'http://127.0.0.1:9001/auth', identity });
  } catch (error) {
    const { status, retryAfterMs } = error as RelayTokenError;
    expectType<Equals<typeof status, number>>();
    expectType<Equals<typeof retryAfterMs, number | undefined>>();
  }

  expectType<Equals<typeof FRAME_OVERHEAD, 30>>();
  expectType<Equals<typeof SIGNED_KEY_LEN, 130>>();
  const handshake = await E2eHandshake.create({ identity, localPeerId: peerId, remotePeerId: peerId });
  const session: E2eSession = await handshake.accept(handshake.signedKey);
  expectType<Equals<typeof session.remotePeerId, string>>();
  const frame: Uint8Array = await session.encrypt(new Uint8Array(1));
  await session.decrypt(frame).catch((error: unknown) => error instanceof E2eError && error.code === 'e2e_replay');
  // @ts-expect-error sessions are made by E2eHandshake#accept
  new E2eSession();
}
