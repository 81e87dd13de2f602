//! The relay server: one coordinator owning the libp2p node's swarm task,
//! the signaling server (the public port) and the admin HTTP server, stopped
//! together by one cancellation token.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, atomic::AtomicBool},
    time::Instant,
};

use libp2p::{Multiaddr, PeerId, identity::Keypair, metrics::Metrics};
use prometheus_client::registry::Registry;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};

use crate::{
    admin_http::{self, AdminState, StatusLimits},
    config::RelayConfig,
    libp2p_node::{Certificates, Libp2pNode},
    metrics::{Libp2pNodeMetrics, SecurityMetrics, SignalingMetrics, TlsMetrics, TurnMetrics},
    signaling::{PublicPortOptions, SignalingServer},
    stun_turn::{IceService, TurnServer},
    tls::{self, TlsCertificate, TlsError},
    token_authority::{TokenAuthority, TokenAuthorityError},
    turn_credentials::TurnCredentials,
};

/// File in the data dir holding the relay's identity key.
pub const KEY_FILE: &str = "identity.key";
/// File in the data dir holding the certificate of the `/webrtc-direct`
/// listeners (PEM): kept, so their `/certhash` address survives restarts.
pub(crate) const WEBRTC_CERTIFICATE_FILE: &str = "webrtc.pem";

/// Why the relay could not start. Each renders as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The identity key could not be read or created.
    #[error("identity: {0}")]
    Identity(String),
    /// The libp2p stack could not be built.
    #[error("libp2p: {0}")]
    Build(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The metrics server could not bind.
    #[error("cannot serve metrics on {addr}: {reason}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The token authority could not start (key, revocations file).
    #[error("auth: {0}")]
    Auth(#[from] TokenAuthorityError),
    /// The STUN/TURN port could not start.
    #[error("STUN/TURN: {0}")]
    Turn(String),
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The signaling server could not bind.
    #[error("cannot serve signaling on {addr}: {reason}")]
    Signaling {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Loads (or creates, mode 0600) the relay's key in `data_dir`.
pub fn load_identity(data_dir: &Path) -> Result<Keypair, StartError> {
    darkswap_p2p::load_or_create_keypair(&data_dir.join(KEY_FILE))
        .map_err(|e| StartError::Identity(e.to_string()))
}

/// Loads (or creates, mode 0600) the relay's WebRTC-direct certificate in
/// `data_dir`.
pub(crate) fn load_webrtc_certificate(
    data_dir: &Path,
) -> Result<darkswap_p2p::WebRtcCertificate, StartError> {
    darkswap_p2p::load_or_create_webrtc_certificate(&data_dir.join(WEBRTC_CERTIFICATE_FILE))
        .map_err(|e| StartError::Identity(e.to_string()))
}

/// The relay's TLS certificate and the metrics of its use.
type Tls = (Arc<TlsCertificate>, Arc<TlsMetrics>);

/// The TLS certificate from `config.tls`, if it names one, with its
/// metrics registered.
fn load_tls(config: &RelayConfig, registry: &mut Registry) -> Result<Option<Tls>, StartError> {
    let t = &config.tls;
    let Some((cert_file, key_file)) = t.files() else {
        if t.cert_file.is_some() || t.key_file.is_some() {
            return Err(TlsError::Incomplete.into());
        }
        return Ok(None);
    };
    let metrics = Arc::new(TlsMetrics::register(registry));
    let certificate = TlsCertificate::load(cert_file, key_file)?.with_metrics(metrics.clone());
    Ok(Some((Arc::new(certificate), metrics)))
}

/// A running relay.
#[derive(Debug)]
pub struct RelayServer {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    metrics_addr: Option<SocketAddr>,
    signaling: Option<SignalingServer>,
    turn: Option<TurnServer>,
    tls: Option<Arc<TlsCertificate>>,
    cancel: CancellationToken,
    swarm_task: AbortOnDropHandle<()>,
    admin_task: Option<AbortOnDropHandle<()>>,
    tls_task: Option<AbortOnDropHandle<()>>,
}

impl RelayServer {
    /// Starts every component, or fails with the first that cannot start.
    /// Returns once all listeners are bound.
    pub async fn spawn(config: RelayConfig) -> Result<Self, StartError> {
        let key = load_identity(&config.data_dir)?;
        let certificate = load_webrtc_certificate(&config.data_dir)?;
        let peer_id = key.public().to_peer_id();
        let mut registry = Registry::default();
        let libp2p_metrics = Metrics::new(&mut registry);
        let node_metrics = Arc::new(Libp2pNodeMetrics::register(&mut registry));
        node_metrics.set_limits(config.hop.max_reservations, config.hop.max_circuits);
        let signaling_metrics = Arc::new(SignalingMetrics::register(&mut registry));
        let security_metrics = Arc::new(SecurityMetrics::register(&mut registry));
        let authority = Arc::new(TokenAuthority::new(
            &key,
            config.tokens.clone(),
            Some(&config.data_dir),
            security_metrics.clone(),
        )?);
        let tls = load_tls(&config, &mut registry)?;
        let certificates = Certificates {
            webrtc: certificate,
            tls: tls.as_ref().map(|(certificate, _)| &**certificate),
        };
        let (node, listen_addrs) = Libp2pNode::start(
            &key,
            certificates,
            &config,
            &mut registry,
            libp2p_metrics,
            node_metrics.clone(),
            security_metrics,
        )
        .await?;

        let cancel = CancellationToken::new();
        let (turn, ice) = if config.turn.enabled {
            let metrics = Arc::new(TurnMetrics::register(&mut registry));
            let secret = match &config.turn.secret {
                Some(secret) => secret.as_bytes().to_vec(),
                None => {
                    let mut secret = vec![0u8; 32];
                    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
                    secret
                }
            };
            let credentials = TurnCredentials::new(&secret);
            let server = TurnServer::start(&config.turn, credentials.clone(), metrics.clone())
                .await
                .map_err(|e| StartError::Turn(e.to_string()))?;
            let ice = IceService::new(
                &config.turn,
                server.local_addr().port(),
                credentials,
                metrics,
            );
            (Some(server), Some(Arc::new(ice)))
        } else {
            (None, None)
        };
        let signaling = if config.signaling.enabled {
            let addr = config.signaling.listen;
            let fail = |e: std::io::Error| StartError::Signaling {
                addr,
                reason: e.to_string(),
            };
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
            let mut options = PublicPortOptions::default();
            if let Some(ice) = ice {
                options = options.with_ice(ice);
            }
            if let Some((certificate, metrics)) = &tls {
                options = options.with_tls(certificate, metrics.clone())?;
            }
            Some(
                SignalingServer::serve_with(
                    listener,
                    &config,
                    authority,
                    signaling_metrics,
                    options,
                    cancel.child_token(),
                )
                .map_err(fail)?,
            )
        } else {
            None
        };
        let state = Arc::new(AdminState {
            peer_id,
            started: Instant::now(),
            registry,
            node_metrics,
            swarm_alive: AtomicBool::new(true),
            status_limits: StatusLimits {
                signaling_peers_max: config.signaling.max_peers,
                ws_circuits_max: config.ws_circuit.max_circuits,
            },
        });
        let (metrics_addr, admin_task) = if config.admin_http.enabled {
            let addr = config.admin_http.listen;
            let fail = |e: std::io::Error| StartError::Metrics {
                addr,
                reason: e.to_string(),
            };
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
            let local = listener.local_addr().map_err(fail)?;
            tracing::info!(addr = %local, "metrics server listening");
            let task = AbortOnDropHandle::new(tokio::spawn(admin_http::serve(
                listener,
                state.clone(),
                cancel.clone(),
            )));
            (Some(local), Some(task))
        } else {
            (None, None)
        };
        let swarm_task = AbortOnDropHandle::new(tokio::spawn(node.run(state, cancel.clone())));
        let tls = tls.map(|(certificate, _)| certificate);
        let interval = config.tls.reload_interval;
        let tls_task = tls
            .as_ref()
            .filter(|_| !interval.is_zero())
            .map(|certificate| {
                let watch = tls::watch(certificate.clone(), interval, cancel.clone());
                AbortOnDropHandle::new(tokio::spawn(watch))
            });
        Ok(RelayServer {
            peer_id,
            listen_addrs,
            metrics_addr,
            signaling,
            turn,
            tls,
            cancel,
            swarm_task,
            admin_task,
            tls_task,
        })
    }

    /// Reads the TLS certificate and key files again and serves them to new
    /// connections, on the public port and libp2p's `/tls/ws` listeners
    /// (what the binary does on SIGHUP). `Ok(false)` when the relay has no
    /// TLS; on an error the certificate in use stays.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        match &self.tls {
            Some(certificate) => certificate.reload(true),
            None => Ok(false),
        }
    }

    /// The relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses bound at start, each ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The admin HTTP server's bound address (`/metrics`, `/health`), if
    /// enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The signaling server's bound address (`/signaling`, `/relay`), if enabled.
    pub fn signaling_addr(&self) -> Option<SocketAddr> {
        self.signaling.as_ref().map(SignalingServer::local_addr)
    }

    /// The STUN/TURN UDP address, if `[turn]` is enabled.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().map(TurnServer::local_addr)
    }

    /// A token that stops the server when cancelled.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops accepting, closes circuits and connections, and waits for every
    /// task to end.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        // Each task ends by itself once cancelled; a panic in one has been
        // logged by then and changes nothing about stopping.
        let _ = self.swarm_task.await;
        if let Some(admin) = self.admin_task {
            let _ = admin.await;
        }
        if let Some(watch) = self.tls_task {
            let _ = watch.await;
        }
        if let Some(signaling) = self.signaling {
            signaling.stopped().await;
        }
        if let Some(turn) = self.turn {
            turn.close().await;
        }
        tracing::info!("relay stopped");
    }
}
