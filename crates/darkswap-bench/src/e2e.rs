//! `e2e` (issue 18 P6): what our end-to-end encryption costs over the AEAD
//! it is built on. In process, single-threaded: per message size, the
//! throughput of `EncryptionManager::encrypt` on one side and `decrypt` on
//! the other (frame header, nonce from epoch and counter, replay window,
//! the session lock) against the same RustCrypto AEAD (`aes-gcm`,
//! `chacha20poly1305`) sealing and opening the same bytes with the same
//! 14-byte associated data and nothing else. Both run in the same round,
//! alternating which goes first.

use std::time::{Duration, Instant};

use aes_gcm::{
    Aes256Gcm,
    aead::{Aead, AeadCore, KeyInit, Payload, consts::U12},
};
use anyhow::Context as _;
use chacha20poly1305::ChaCha20Poly1305;
use darkswap_e2e::{EncryptionAlgorithm, EncryptionConfig, EncryptionManager, Keypair};
use serde::Serialize;

use crate::report::{Conditions, Figures, Report};

/// What to measure.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub(crate) struct E2eArgs {
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Plaintext bytes through each side per size and round, MiB.
    #[arg(long, default_value_t = 32)]
    mib: usize,
    /// Message sizes, bytes.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 1350, 16384])]
    sizes: Vec<usize>,
}

/// Runs the measure.
pub(crate) fn run(args: E2eArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        E2eArgs {
            rounds: 1,
            mib: 1,
            ..args
        }
    } else {
        args
    };
    let conditions = Conditions::now();
    let mut figures = Figures::default();
    for algorithm in [
        EncryptionAlgorithm::AesGcm256,
        EncryptionAlgorithm::ChaCha20Poly1305,
    ] {
        let (alice, bob, alice_id, bob_id) = session(algorithm)?;
        for &size in &args.sizes {
            let count = (args.mib << 20).div_ceil(size.max(1)).max(1);
            let message = vec![0x5au8; size];
            for round in 0..args.rounds {
                eprintln!(
                    "e2e: {} {size} B, round {}/{}",
                    algorithm_name(algorithm),
                    round + 1,
                    args.rounds
                );
                let ours = || -> anyhow::Result<Duration> {
                    let start = Instant::now();
                    for _ in 0..count {
                        let frame = alice.encrypt(&bob_id, &message)?;
                        let plain = bob.decrypt(&alice_id, &frame)?;
                        anyhow::ensure!(plain.len() == size, "wrong length back");
                    }
                    Ok(start.elapsed())
                };
                let theirs = || raw(algorithm, &message, count);
                let (o, t) = if round % 2 == 0 {
                    let o = ours()?;
                    (o, theirs()?)
                } else {
                    let t = theirs()?;
                    (ours()?, t)
                };
                let mib_s =
                    |d: Duration| (count * size) as f64 / d.as_secs_f64() / (1 << 20) as f64;
                let goal = (size >= 16384).then_some(">= 0.9");
                figures.add_versus(
                    &format!("P6 {} {size} B: seal+open", algorithm_name(algorithm)),
                    "MiB/s",
                    "the same AEAD crate, raw seal+open",
                    goal,
                    mib_s(o),
                    mib_s(t),
                );
            }
        }
    }
    Report::new("e2e", conditions, &args, figures)
}

fn algorithm_name(a: EncryptionAlgorithm) -> &'static str {
    match a {
        EncryptionAlgorithm::AesGcm256 => "AES-256-GCM",
        EncryptionAlgorithm::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        _ => "another AEAD",
    }
}

type PeerId = libp2p_identity::PeerId;

/// Two managers with a session between them, as two peers set it up.
fn session(
    algorithm: EncryptionAlgorithm,
) -> anyhow::Result<(EncryptionManager, EncryptionManager, PeerId, PeerId)> {
    let config = EncryptionConfig {
        encryption_algorithm: algorithm,
        ..EncryptionConfig::default()
    };
    let (ak, bk) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (a_id, b_id) = (ak.public().to_peer_id(), bk.public().to_peer_id());
    let alice = EncryptionManager::new(ak, config.clone())?;
    let bob = EncryptionManager::new(bk, config)?;
    let from_alice = alice.signed_ephemeral_key(&b_id)?;
    let from_bob = bob.signed_ephemeral_key(&a_id)?;
    bob.accept_signed_key(&a_id, &from_alice)?;
    alice.accept_signed_key(&b_id, &from_bob)?;
    Ok((alice, bob, a_id, b_id))
}

/// `count` seals and opens of `message` with the raw AEAD: a fresh nonce
/// per message (a counter, as ours), our header's length of associated data.
fn raw(algorithm: EncryptionAlgorithm, message: &[u8], count: usize) -> anyhow::Result<Duration> {
    match algorithm {
        EncryptionAlgorithm::AesGcm256 => seal_open::<Aes256Gcm>(message, count),
        EncryptionAlgorithm::ChaCha20Poly1305 => seal_open::<ChaCha20Poly1305>(message, count),
        other => anyhow::bail!("no raw reference for {other:?}"),
    }
}

fn seal_open<C>(message: &[u8], count: usize) -> anyhow::Result<Duration>
where
    C: Aead + KeyInit + AeadCore<NonceSize = U12>,
{
    let c = C::new_from_slice(&[7u8; 32]).context("key")?;
    let aad = [1u8; 14];
    let start = Instant::now();
    for i in 0..count {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let sealed = c
            .encrypt(
                &n.into(),
                Payload {
                    msg: message,
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("seal"))?;
        let open = c
            .decrypt(
                &n.into(),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("open"))?;
        anyhow::ensure!(open.len() == message.len(), "wrong length back");
    }
    Ok(start.elapsed())
}
