//! `EncryptionManager` through its public API only: two peers whose keys and
//! frames travel through a relay that may tamper with them, several threads
//! sharing one manager, and rotation while frames are in flight.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::thread;

use darkswap_e2e::{
    EncryptionAlgorithm, EncryptionConfig, EncryptionError, EncryptionManager, FRAME_HEADER_LEN,
    SignedKey,
};
use darkswap_e2e::{Keypair, PeerId};

struct Node {
    id: PeerId,
    manager: Arc<EncryptionManager>,
}

fn node(algorithm: EncryptionAlgorithm) -> Node {
    let key = Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let config = EncryptionConfig {
        encryption_algorithm: algorithm,
        ..EncryptionConfig::default()
    };
    Node {
        id,
        manager: Arc::new(EncryptionManager::new(key, config).unwrap()),
    }
}

/// The exchange as it goes over a relay: signed keys are serialised, carried,
/// and parsed on the other side.
fn handshake(a: &Node, b: &Node) -> Result<(), EncryptionError> {
    let to_b = a.manager.signed_ephemeral_key(&b.id)?.to_bytes();
    let to_a = b.manager.signed_ephemeral_key(&a.id)?.to_bytes();
    b.manager
        .accept_signed_key(&a.id, &SignedKey::from_bytes(&to_b)?)?;
    a.manager
        .accept_signed_key(&b.id, &SignedKey::from_bytes(&to_a)?)
}

#[test]
fn a_relay_can_neither_substitute_keys_nor_alter_frames() {
    for algorithm in [
        EncryptionAlgorithm::AesGcm256,
        EncryptionAlgorithm::ChaCha20Poly1305,
    ] {
        let (alice, bob, relay) = (node(algorithm), node(algorithm), node(algorithm));

        // The relay answers Alice's key with its own, claiming to be Bob.
        alice.manager.signed_ephemeral_key(&bob.id).unwrap();
        let forged = relay.manager.signed_ephemeral_key(&alice.id).unwrap();
        assert_eq!(
            alice.manager.accept_signed_key(&bob.id, &forged),
            Err(EncryptionError::BadSignature { peer: bob.id })
        );
        assert!(!alice.manager.has_session(&bob.id));

        handshake(&alice, &bob).unwrap();
        let frame = alice.manager.encrypt(&bob.id, b"1 BTC at 50k").unwrap();
        // What the relay sees carries no plaintext.
        assert!(!frame.windows(12).any(|w| w == b"1 BTC at 50k"));
        for position in [0, FRAME_HEADER_LEN - 1, FRAME_HEADER_LEN, frame.len() - 1] {
            let mut tampered = frame.clone();
            tampered[position] ^= 0x20;
            assert!(
                bob.manager.decrypt(&alice.id, &tampered).is_err(),
                "byte {position}"
            );
        }
        assert_eq!(
            bob.manager.decrypt(&alice.id, &frame[..frame.len() - 1]),
            Err(EncryptionError::AuthenticationFailed)
        );
        assert_eq!(
            bob.manager.decrypt(&alice.id, &frame).unwrap(),
            b"1 BTC at 50k"
        );
        assert!(matches!(
            bob.manager.decrypt(&alice.id, &frame),
            Err(EncryptionError::Replay { .. })
        ));
        let reply = bob.manager.encrypt(&alice.id, b"deal").unwrap();
        assert_eq!(alice.manager.decrypt(&bob.id, &reply).unwrap(), b"deal");
    }
}

#[test]
fn threads_sharing_a_manager_never_reuse_a_nonce() {
    let (alice, bob) = (
        node(EncryptionAlgorithm::AesGcm256),
        node(EncryptionAlgorithm::AesGcm256),
    );
    handshake(&alice, &bob).unwrap();
    let workers: Vec<_> = (0..4u8)
        .map(|worker| {
            let manager = Arc::clone(&alice.manager);
            let bob_id = bob.id;
            thread::spawn(move || {
                (0..500u16)
                    .map(|i| {
                        let mut message = vec![worker];
                        message.extend_from_slice(&i.to_be_bytes());
                        manager.encrypt(&bob_id, &message).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut frames: Vec<Vec<u8>> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let headers: HashSet<_> = frames
        .iter()
        .map(|f| f[..FRAME_HEADER_LEN].to_vec())
        .collect();
    assert_eq!(
        headers.len(),
        frames.len(),
        "a (epoch, counter) was used twice"
    );
    // All decrypt on the other side, in the order they were sealed (2000
    // frames are more than the replay window: a network may reorder them only
    // so far).
    frames.sort_by(|a, b| a[..FRAME_HEADER_LEN].cmp(&b[..FRAME_HEADER_LEN]));
    let mut messages = HashSet::new();
    for frame in &frames {
        messages.insert(bob.manager.decrypt(&alice.id, frame).unwrap());
    }
    assert_eq!(messages.len(), frames.len());
}

#[test]
fn rotating_mid_stream_loses_no_message_in_flight() {
    let (alice, bob) = (
        node(EncryptionAlgorithm::ChaCha20Poly1305),
        node(EncryptionAlgorithm::ChaCha20Poly1305),
    );
    handshake(&alice, &bob).unwrap();
    // A queue standing for the network: the sender rotates every 10 messages,
    // and the receiver lags 25 messages behind, so frames of up to three
    // epochs are in flight at once.
    let mut in_flight = VecDeque::new();
    let mut received = Vec::new();
    for i in 0..100u32 {
        if i % 10 == 0 {
            alice.manager.rotate_keys().unwrap();
        }
        in_flight.push_back(alice.manager.encrypt(&bob.id, &i.to_be_bytes()).unwrap());
        if in_flight.len() > 25 {
            let frame = in_flight.pop_front().unwrap();
            received.push(bob.manager.decrypt(&alice.id, &frame).unwrap());
        }
    }
    // The newest epoch's frames overtake the older ones still queued.
    while let Some(frame) = in_flight.pop_back() {
        received.push(bob.manager.decrypt(&alice.id, &frame).unwrap());
    }
    let mut numbers: Vec<u32> = received
        .iter()
        .map(|m| u32::from_be_bytes(m.as_slice().try_into().unwrap()))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..100).collect::<Vec<_>>());
    bob.manager.prune_expired_keys();
    let reply = bob.manager.encrypt(&alice.id, b"all received").unwrap();
    assert_eq!(
        alice.manager.decrypt(&bob.id, &reply).unwrap(),
        b"all received"
    );
}

#[test]
fn a_new_handshake_replaces_the_session_and_old_frames_die_with_it() {
    let (alice, bob) = (
        node(EncryptionAlgorithm::AesGcm256),
        node(EncryptionAlgorithm::AesGcm256),
    );
    handshake(&alice, &bob).unwrap();
    let old = alice.manager.encrypt(&bob.id, b"old session").unwrap();
    handshake(&alice, &bob).unwrap();
    assert_eq!(
        bob.manager.decrypt(&alice.id, &old),
        Err(EncryptionError::AuthenticationFailed)
    );
    let new = alice.manager.encrypt(&bob.id, b"new session").unwrap();
    assert_eq!(
        bob.manager.decrypt(&alice.id, &new).unwrap(),
        b"new session"
    );
    alice.manager.remove_peer(&bob.id);
    assert_eq!(
        alice.manager.encrypt(&bob.id, b"gone"),
        Err(EncryptionError::NoSession { peer: bob.id })
    );
}
