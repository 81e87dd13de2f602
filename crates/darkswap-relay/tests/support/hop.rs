//! A raw circuit relay v2 client: one libp2p connection to the relay, on
//! which it sends `RESERVE` requests when the test says so and never on its
//! own. It renews only when asked, so a test can let a reservation expire,
//! and several clients with one key are several connections of one peer.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, identity::Keypair, noise, relay, swarm::SwarmEvent, tcp, yamux};
use tokio_util::task::AbortOnDropHandle;

const WAIT: Duration = Duration::from_secs(20);

/// `Status.OK` of the relay protocol's `HopMessage`.
pub(crate) const OK: i32 = 100;
/// `Status.RESOURCE_LIMIT_EXCEEDED`.
pub(crate) const RESOURCE_LIMIT_EXCEEDED: i32 = 201;

/// The fields of a `HopMessage` answer a test reads (message_v2.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct HopStatus {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(int32, optional, tag = "5")]
    status: Option<i32>,
}

/// One connection to the relay, driven by a background task until dropped
/// (dropping it closes the connection).
pub(crate) struct HopClient {
    control: libp2p_stream::Control,
    relay: PeerId,
    _task: AbortOnDropHandle<()>,
}

impl HopClient {
    /// Opens a new connection with `key` to the relay at `addr` (ending in
    /// `/p2p/<relay>`).
    pub(crate) async fn connect(key: &Keypair, addr: &Multiaddr, relay: PeerId) -> Self {
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let control = swarm.behaviour().new_control();
        swarm.dial(addr.clone()).unwrap();
        let connected = async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == relay => break,
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        panic!("dial {addr}: {error}")
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(WAIT, connected)
            .await
            .expect("connected to the relay");
        let task = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        HopClient {
            control,
            relay,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// Sends `RESERVE` on a new hop stream and returns the status answered
    /// ([`OK`], [`RESOURCE_LIMIT_EXCEEDED`], ...). A second call on the same
    /// client is a renewal.
    pub(crate) async fn reserve(&mut self) -> i32 {
        let exchange = async {
            let mut stream = self
                .control
                .open_stream(self.relay, relay::HOP_PROTOCOL_NAME)
                .await
                .expect("open hop stream");
            // Length-prefixed HopMessage { type: RESERVE (0) }.
            stream.write_all(&[2, 0x08, 0x00]).await.unwrap();
            stream.flush().await.unwrap();
            let len = read_varint(&mut stream).await;
            let mut body = vec![0; len];
            stream.read_exact(&mut body).await.unwrap();
            let answer: HopStatus = prost::Message::decode(body.as_slice()).unwrap();
            assert_eq!(answer.r#type, 2, "a STATUS answer");
            answer.status.expect("a status")
        };
        tokio::time::timeout(WAIT, exchange)
            .await
            .expect("the relay answered RESERVE")
    }
}

async fn read_varint(stream: &mut libp2p::Stream) -> usize {
    let mut value = 0usize;
    for shift in (0..35).step_by(7) {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).await.unwrap();
        value |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint too long")
}
