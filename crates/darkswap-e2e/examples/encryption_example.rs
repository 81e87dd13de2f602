//! End-to-end encryption between two peers with `EncryptionManager`.
//!
//! Alice and Bob exchange signed X25519 keys (as they would through a relay
//! they do not trust), then encrypt messages both ways, and show what the
//! scheme refuses: a key substituted by the relay, a tampered frame, a
//! replayed frame. Bob rotates his keys mid-stream and a message from the old
//! epoch, still in flight, decrypts. Runs to completion, and fails (exit
//! code 1) if any of that does not hold: `scripts/test.sh` runs it.
//!
//! ```text
//! cargo run -p darkswap-e2e --example encryption_example
//! ```

use std::time::Duration;

use darkswap_e2e::Keypair;
use darkswap_e2e::{
    EncryptionAlgorithm, EncryptionConfig, EncryptionError, EncryptionManager, KeyExchangeAlgorithm,
};

fn main() -> anyhow::Result<()> {
    for algorithm in [
        EncryptionAlgorithm::AesGcm256,
        EncryptionAlgorithm::ChaCha20Poly1305,
    ] {
        println!("== {algorithm} ==");
        run(EncryptionConfig {
            key_exchange_algorithm: KeyExchangeAlgorithm::X25519,
            encryption_algorithm: algorithm,
            key_rotation_interval: Duration::from_secs(3600),
            use_forward_secrecy: true,
            use_ephemeral_keys: true,
        })?;
    }
    Ok(())
}

fn run(config: EncryptionConfig) -> anyhow::Result<()> {
    let (alice_key, bob_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (alice_id, bob_id) = (
        alice_key.public().to_peer_id(),
        bob_key.public().to_peer_id(),
    );
    let alice = EncryptionManager::new(alice_key, config.clone())?;
    let bob = EncryptionManager::new(bob_key, config.clone())?;

    // Each side signs a fresh key for the other with its libp2p identity key.
    let from_alice = alice.signed_ephemeral_key(&bob_id)?;
    let from_bob = bob.signed_ephemeral_key(&alice_id)?;
    println!("signed keys: {} bytes each", from_alice.to_bytes().len());

    // A relay that swaps in its own key cannot sign it as Alice.
    let relay = EncryptionManager::new(Keypair::generate_ed25519(), config)?;
    let substituted = relay.signed_ephemeral_key(&bob_id)?;
    match bob.accept_signed_key(&alice_id, &substituted) {
        Err(error @ EncryptionError::BadSignature { .. }) => {
            println!("relay's substituted key refused: {error}")
        }
        other => anyhow::bail!("substituted key not refused: {other:?}"),
    }

    bob.accept_signed_key(&alice_id, &from_alice)?;
    alice.accept_signed_key(&bob_id, &from_bob)?;

    let message = b"Hello, Bob! This is a secret message from Alice.";
    let frame = alice.encrypt(&bob_id, message)?;
    anyhow::ensure!(
        !frame.windows(message.len()).any(|w| w == message),
        "the plaintext shows in the frame"
    );

    // The relay flips one bit of the ciphertext on its way.
    let mut tampered = frame.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    println!(
        "tampered frame refused: {}",
        refused(bob.decrypt(&alice_id, &tampered))?
    );

    let plaintext = bob.decrypt(&alice_id, &frame)?;
    anyhow::ensure!(plaintext == message, "bob read something else");
    println!(
        "alice -> bob ({} bytes on the wire): {}",
        frame.len(),
        String::from_utf8_lossy(&plaintext)
    );
    println!(
        "replayed frame refused: {}",
        refused(bob.decrypt(&alice_id, &frame))?
    );

    // Bob rotates while a frame of his old epoch is still in flight.
    let in_flight = bob.encrypt(&alice_id, b"sent before rotation")?;
    bob.rotate_keys()?;
    let after = bob.encrypt(&alice_id, b"sent after rotation")?;
    let new_epoch = alice.decrypt(&bob_id, &after)?;
    anyhow::ensure!(new_epoch == b"sent after rotation", "new epoch garbled");
    println!(
        "bob -> alice, new epoch first: {}",
        String::from_utf8_lossy(&new_epoch)
    );
    let old_epoch = alice.decrypt(&bob_id, &in_flight)?;
    anyhow::ensure!(old_epoch == b"sent before rotation", "old epoch garbled");
    println!(
        "bob -> alice, old epoch still in flight: {}",
        String::from_utf8_lossy(&old_epoch)
    );

    alice.prune_expired_keys();
    bob.prune_expired_keys();
    Ok(())
}

fn refused(result: Result<Vec<u8>, EncryptionError>) -> anyhow::Result<EncryptionError> {
    match result {
        Ok(_) => anyhow::bail!("a frame that must be refused was accepted"),
        Err(error) => Ok(error),
    }
}
