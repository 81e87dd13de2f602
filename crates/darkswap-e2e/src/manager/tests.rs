use super::*;
use crate::{key_share::MAX_SIGNATURE_LEN, *};

fn manager(config: EncryptionConfig) -> EncryptionManager {
    EncryptionManager::new(Keypair::generate_ed25519(), config).unwrap()
}

fn with_algorithm(algorithm: EncryptionAlgorithm) -> EncryptionConfig {
    EncryptionConfig {
        encryption_algorithm: algorithm,
        ..EncryptionConfig::default()
    }
}

/// Signed key exchange between `a` and `b`, keys crossing.
fn connect(a: &EncryptionManager, b: &EncryptionManager) {
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let from_a = a.signed_ephemeral_key(&b_id).unwrap();
    let from_b = b.signed_ephemeral_key(&a_id).unwrap();
    b.accept_signed_key(&a_id, &from_a).unwrap();
    a.accept_signed_key(&b_id, &from_b).unwrap();
}

fn pair(config: EncryptionConfig) -> (EncryptionManager, EncryptionManager) {
    let (a, b) = (manager(config.clone()), manager(config));
    connect(&a, &b);
    (a, b)
}

const ALGORITHMS: [EncryptionAlgorithm; 2] = [
    EncryptionAlgorithm::AesGcm256,
    EncryptionAlgorithm::ChaCha20Poly1305,
];

#[test]
fn round_trip_both_directions_and_algorithms() {
    for algorithm in ALGORITHMS {
        let (a, b) = pair(with_algorithm(algorithm));
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        for message in [&b""[..], b"x", &[0xAB; 5000]] {
            let frame = a.encrypt(&b_id, message).unwrap();
            assert_eq!(frame.len(), message.len() + FRAME_OVERHEAD);
            assert_eq!(frame[1], algorithm.wire_id());
            assert_eq!(b.decrypt(&a_id, &frame).unwrap(), message);
            let frame = b.encrypt(&a_id, message).unwrap();
            assert_eq!(a.decrypt(&b_id, &frame).unwrap(), message);
        }
    }
}

#[test]
fn the_same_plaintext_never_gives_the_same_frame() {
    let (a, b) = pair(EncryptionConfig::default());
    let b_id = b.local_peer_id();
    let first = a.encrypt(&b_id, b"same").unwrap();
    let second = a.encrypt(&b_id, b"same").unwrap();
    assert_ne!(first[FRAME_HEADER_LEN..], second[FRAME_HEADER_LEN..]);
    assert_eq!(&first[6..14], &0u64.to_be_bytes());
    assert_eq!(&second[6..14], &1u64.to_be_bytes());
}

#[test]
fn flipping_any_byte_of_a_frame_is_rejected_and_the_genuine_frame_still_decrypts() {
    for algorithm in ALGORITHMS {
        let (a, b) = pair(with_algorithm(algorithm));
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let frame = a.encrypt(&b_id, b"an order worth protecting").unwrap();
        for position in 0..frame.len() {
            for mask in [0x01, 0x80, 0xFF] {
                let mut tampered = frame.clone();
                tampered[position] ^= mask;
                let error = b.decrypt(&a_id, &tampered).unwrap_err();
                let expected = match position {
                    0 => matches!(error, EncryptionError::UnsupportedVersion(_)),
                    1 => matches!(
                        error,
                        EncryptionError::MalformedFrame(_)
                            | EncryptionError::AlgorithmMismatch { .. }
                    ),
                    2..=5 => matches!(
                        error,
                        EncryptionError::AuthenticationFailed
                            | EncryptionError::EpochTooFarAhead { .. }
                    ),
                    _ => error == EncryptionError::AuthenticationFailed,
                };
                assert!(expected, "byte {position} ^ {mask:#x}: {error:?}");
            }
        }
        assert_eq!(
            b.decrypt(&a_id, &frame).unwrap(),
            b"an order worth protecting"
        );
    }
}

#[test]
fn truncated_frames_are_rejected() {
    let (a, b) = pair(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let frame = a.encrypt(&b_id, b"twelve bytes").unwrap();
    for len in 0..frame.len() {
        let error = b.decrypt(&a_id, &frame[..len]).unwrap_err();
        if len < FRAME_OVERHEAD {
            assert!(
                matches!(error, EncryptionError::MalformedFrame(_)),
                "{len}: {error:?}"
            );
        } else {
            assert_eq!(error, EncryptionError::AuthenticationFailed, "{len}");
        }
    }
    let mut longer = frame.clone();
    longer.push(0);
    assert_eq!(
        b.decrypt(&a_id, &longer),
        Err(EncryptionError::AuthenticationFailed)
    );
    assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"twelve bytes");
}

#[test]
fn a_replayed_frame_is_rejected_and_the_next_one_accepted() {
    let (a, b) = pair(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let first = a.encrypt(&b_id, b"pay 1 BTC").unwrap();
    b.decrypt(&a_id, &first).unwrap();
    assert_eq!(
        b.decrypt(&a_id, &first),
        Err(EncryptionError::Replay {
            epoch: 0,
            counter: 0
        })
    );
    let second = a.encrypt(&b_id, b"next").unwrap();
    assert_eq!(b.decrypt(&a_id, &second).unwrap(), b"next");
    assert!(matches!(
        b.decrypt(&a_id, &second),
        Err(EncryptionError::Replay { counter: 1, .. })
    ));
}

#[test]
fn reordering_within_the_window_is_accepted_beyond_it_rejected() {
    let (a, b) = pair(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let frames: Vec<_> = (0..=REPLAY_WINDOW + 5)
        .map(|i| a.encrypt(&b_id, &i.to_be_bytes()).unwrap())
        .collect();
    let newest = REPLAY_WINDOW + 5;
    b.decrypt(&a_id, &frames[newest as usize]).unwrap();
    // Backwards through the window: every one exactly once.
    for i in (6..newest).rev() {
        assert_eq!(
            b.decrypt(&a_id, &frames[i as usize]).unwrap(),
            i.to_be_bytes()
        );
    }
    for i in 0..=5 {
        assert_eq!(
            b.decrypt(&a_id, &frames[i as usize]),
            Err(EncryptionError::TooOld {
                epoch: 0,
                counter: i,
                newest
            })
        );
    }
    for i in [6, 500, newest] {
        assert!(matches!(
            b.decrypt(&a_id, &frames[i as usize]),
            Err(EncryptionError::Replay { .. })
        ));
    }
}

#[test]
fn rotation_mid_stream_keeps_in_flight_frames_until_the_grace_period_ends() {
    let (a, b) = pair(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let old = a.encrypt(&b_id, b"sent before rotation").unwrap();
    let old_late = a.encrypt(&b_id, b"also before").unwrap();
    a.rotate_keys().unwrap();
    let new = a.encrypt(&b_id, b"sent after rotation").unwrap();
    assert_eq!(&new[2..6], &1u32.to_be_bytes());
    assert_ne!(new[FRAME_HEADER_LEN..], old[FRAME_HEADER_LEN..]);

    let now = Instant::now();
    // The new epoch arrives first; the old one is still in flight.
    assert_eq!(
        b.decrypt_at(&a_id, &new, now).unwrap(),
        b"sent after rotation"
    );
    assert_eq!(
        b.decrypt_at(&a_id, &old, now).unwrap(),
        b"sent before rotation"
    );
    assert!(matches!(
        b.decrypt_at(&a_id, &old, now),
        Err(EncryptionError::Replay { epoch: 0, .. })
    ));
    // After the grace period the old epoch's key is refused, then pruned.
    let later = now + PREVIOUS_EPOCH_GRACE;
    assert_eq!(
        b.decrypt_at(&a_id, &old_late, later),
        Err(EncryptionError::UnknownEpoch {
            epoch: 0,
            current: 1
        })
    );
    b.prune_at(later);
    assert!(b.lock().sessions[&a_id].recv.previous.is_empty());
    let next = a.encrypt(&b_id, b"still fine").unwrap();
    assert_eq!(b.decrypt_at(&a_id, &next, later).unwrap(), b"still fine");
}

#[test]
fn without_forward_secrecy_old_epochs_stay_usable() {
    let config = EncryptionConfig {
        use_forward_secrecy: false,
        ..EncryptionConfig::default()
    };
    let (a, b) = pair(config);
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let old = a.encrypt(&b_id, b"late").unwrap();
    a.rotate_keys().unwrap();
    let new = a.encrypt(&b_id, b"new").unwrap();
    let now = Instant::now();
    b.decrypt_at(&a_id, &new, now).unwrap();
    let much_later = now + 100 * PREVIOUS_EPOCH_GRACE;
    b.prune_at(much_later);
    assert_eq!(b.decrypt_at(&a_id, &old, much_later).unwrap(), b"late");
}

#[test]
fn the_receiver_derives_forward_over_lost_epochs_but_only_so_far() {
    let (a, b) = pair(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let mut per_epoch = Vec::new();
    for _ in 0..3 {
        per_epoch.push(a.encrypt(&b_id, b"epoch").unwrap());
        a.rotate_keys().unwrap();
    }
    // Epochs 0..2 are lost in transit; epoch 3 arrives first.
    let third = a.encrypt(&b_id, b"epoch 3").unwrap();
    assert_eq!(b.decrypt(&a_id, &third).unwrap(), b"epoch 3");
    for frame in &per_epoch {
        assert_eq!(b.decrypt(&a_id, frame).unwrap(), b"epoch");
    }
    // A forged frame far ahead costs nothing and changes nothing.
    let mut far = a.encrypt(&b_id, b"x").unwrap();
    far[2..6].copy_from_slice(&(3 + MAX_EPOCH_JUMP + 1).to_be_bytes());
    assert_eq!(
        b.decrypt(&a_id, &far),
        Err(EncryptionError::EpochTooFarAhead {
            epoch: 3 + MAX_EPOCH_JUMP + 1,
            current: 3
        })
    );
    let mut near = a.encrypt(&b_id, b"y").unwrap();
    near[2..6].copy_from_slice(&5u32.to_be_bytes());
    assert_eq!(
        b.decrypt(&a_id, &near),
        Err(EncryptionError::AuthenticationFailed)
    );
    assert_eq!(b.lock().sessions[&a_id].recv.current.epoch, 3);
}

#[test]
fn rotate_keys_skips_idle_sessions_and_encrypt_rotates_stale_keys() {
    let (a, b) = pair(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    for _ in 0..(MAX_EPOCH_JUMP + 4) {
        a.rotate_keys().unwrap();
    }
    let frame = a.encrypt(&b_id, b"after idle rotations").unwrap();
    assert_eq!(&frame[2..6], &0u32.to_be_bytes());
    b.decrypt(&a_id, &frame).unwrap();

    let later = Instant::now() + a.config().key_rotation_interval;
    let frame = a.encrypt_at(&b_id, b"stale key", later).unwrap();
    assert_eq!(&frame[2..6], &1u32.to_be_bytes());
    assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"stale key");
}

#[test]
fn counter_exhaustion_is_an_error_until_the_keys_rotate() {
    let (a, b) = pair(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    a.lock().sessions.get_mut(&b_id).unwrap().send.counter = u64::MAX - 1;
    let last = a.encrypt(&b_id, b"last").unwrap();
    assert_eq!(
        a.encrypt(&b_id, b"one more"),
        Err(EncryptionError::CounterExhausted)
    );
    assert_eq!(b.decrypt(&a_id, &last).unwrap(), b"last");
    a.rotate_keys().unwrap();
    let frame = a.encrypt(&b_id, b"fresh epoch").unwrap();
    assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"fresh epoch");
}

#[test]
fn frames_for_another_peer_or_reflected_back_do_not_decrypt() {
    let (a, b) = pair(EncryptionConfig::default());
    let c = manager(EncryptionConfig::default());
    connect(&a, &c);
    connect(&b, &c);
    let (a_id, b_id, c_id) = (a.local_peer_id(), b.local_peer_id(), c.local_peer_id());
    let to_b = a.encrypt(&b_id, b"for b only").unwrap();
    assert_eq!(
        c.decrypt(&a_id, &to_b),
        Err(EncryptionError::AuthenticationFailed)
    );
    assert_eq!(
        b.decrypt(&c_id, &to_b),
        Err(EncryptionError::AuthenticationFailed)
    );
    assert_eq!(
        a.decrypt(&b_id, &to_b),
        Err(EncryptionError::AuthenticationFailed)
    );
    let stranger = PeerId::random();
    assert_eq!(
        b.decrypt(&stranger, &to_b),
        Err(EncryptionError::NoSession { peer: stranger })
    );
    assert_eq!(
        a.encrypt(&stranger, b"x"),
        Err(EncryptionError::NoSession { peer: stranger })
    );
    assert_eq!(b.decrypt(&a_id, &to_b).unwrap(), b"for b only");
}

#[test]
fn sessions_with_several_peers_are_independent() {
    let hub = manager(EncryptionConfig::default());
    let spokes: Vec<_> = (0..3)
        .map(|_| manager(EncryptionConfig::default()))
        .collect();
    for spoke in &spokes {
        connect(&hub, spoke);
    }
    let hub_id = hub.local_peer_id();
    for round in 0..5u8 {
        for (i, spoke) in spokes.iter().enumerate() {
            let frame = hub
                .encrypt(&spoke.local_peer_id(), &[round, i as u8])
                .unwrap();
            assert_eq!(&frame[6..14], &u64::from(round).to_be_bytes());
            assert_eq!(spoke.decrypt(&hub_id, &frame).unwrap(), [round, i as u8]);
        }
    }
    // Re-keying or dropping one peer leaves the others alone.
    connect(&hub, &spokes[0]);
    hub.remove_peer(&spokes[1].local_peer_id());
    assert!(!hub.has_session(&spokes[1].local_peer_id()));
    let frame = hub
        .encrypt(&spokes[2].local_peer_id(), b"still here")
        .unwrap();
    assert_eq!(spokes[2].decrypt(&hub_id, &frame).unwrap(), b"still here");
    let frame = hub
        .encrypt(&spokes[0].local_peer_id(), b"new session")
        .unwrap();
    assert_eq!(&frame[6..14], &0u64.to_be_bytes());
    assert_eq!(spokes[0].decrypt(&hub_id, &frame).unwrap(), b"new session");
}

#[test]
fn signed_keys_bind_the_signer_and_the_receiver() {
    let (a, b) = (
        manager(EncryptionConfig::default()),
        manager(EncryptionConfig::default()),
    );
    let mallory = manager(EncryptionConfig::default());
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());

    // A relay substituting its own key, signed by itself, for A's.
    let substituted = mallory.signed_ephemeral_key(&b_id).unwrap();
    assert_eq!(
        b.accept_signed_key(&a_id, &substituted),
        Err(EncryptionError::BadSignature { peer: a_id })
    );
    // A's genuine key with one bit of the share changed.
    let genuine = a.signed_ephemeral_key(&b_id).unwrap();
    let mut bytes = genuine.to_bytes();
    bytes[10] ^= 1;
    let altered = SignedKey::from_bytes(&bytes).unwrap();
    assert_eq!(
        b.accept_signed_key(&a_id, &altered),
        Err(EncryptionError::BadSignature { peer: a_id })
    );
    // A key A signed for Mallory, forwarded to B.
    let for_mallory = a.signed_ephemeral_key(&mallory.local_peer_id()).unwrap();
    assert_eq!(
        b.accept_signed_key(&a_id, &for_mallory),
        Err(EncryptionError::BadSignature { peer: a_id })
    );
    // The honest exchange still completes.
    let genuine = a.signed_ephemeral_key(&b_id).unwrap();
    let decoded = SignedKey::from_bytes(&genuine.to_bytes()).unwrap();
    assert_eq!(decoded, genuine);
    let from_b = b.signed_ephemeral_key(&a_id).unwrap();
    b.accept_signed_key(&a_id, &decoded).unwrap();
    a.accept_signed_key(&b_id, &from_b).unwrap();
    let frame = a.encrypt(&b_id, b"authenticated").unwrap();
    assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"authenticated");
}

#[test]
fn malformed_signed_keys_are_rejected() {
    let a = manager(EncryptionConfig::default());
    let good = a
        .signed_ephemeral_key(&PeerId::random())
        .unwrap()
        .to_bytes();
    assert_eq!(good.len(), 2 + KEY_SHARE_LEN + 64);
    assert!(matches!(
        SignedKey::from_bytes(&[]),
        Err(EncryptionError::MalformedKey(_))
    ));
    assert!(matches!(
        SignedKey::from_bytes(&good[..2 + KEY_SHARE_LEN]),
        Err(EncryptionError::MalformedKey(_))
    ));
    let mut bad = good.clone();
    bad[0] = 2;
    assert_eq!(
        SignedKey::from_bytes(&bad),
        Err(EncryptionError::UnsupportedVersion(2))
    );
    let mut bad = good.clone();
    bad[1] = 9;
    assert!(matches!(
        SignedKey::from_bytes(&bad),
        Err(EncryptionError::MalformedKey(_))
    ));
    let mut long = good;
    long.extend_from_slice(&[0; MAX_SIGNATURE_LEN]);
    assert!(matches!(
        SignedKey::from_bytes(&long),
        Err(EncryptionError::MalformedKey(_))
    ));
    assert!(matches!(
        KeyShare::from_bytes(&[0; 63]),
        Err(EncryptionError::MalformedKey(_))
    ));
}

#[test]
fn peers_with_different_algorithms_are_told_so() {
    let aes = manager(with_algorithm(EncryptionAlgorithm::AesGcm256));
    let chacha = manager(with_algorithm(EncryptionAlgorithm::ChaCha20Poly1305));
    let (aes_id, chacha_id) = (aes.local_peer_id(), chacha.local_peer_id());
    let from_chacha = chacha.signed_ephemeral_key(&aes_id).unwrap();
    aes.signed_ephemeral_key(&chacha_id).unwrap();
    assert_eq!(
        aes.accept_signed_key(&chacha_id, &from_chacha),
        Err(EncryptionError::AlgorithmMismatch {
            expected: EncryptionAlgorithm::AesGcm256,
            received: EncryptionAlgorithm::ChaCha20Poly1305
        })
    );
    // Unsigned exchange: the mismatch shows on the first frame.
    let share_aes = aes.generate_ephemeral_key_pair(&chacha_id).unwrap();
    let share_chacha = chacha.generate_ephemeral_key_pair(&aes_id).unwrap();
    aes.perform_key_exchange(&chacha_id, &share_chacha).unwrap();
    chacha.perform_key_exchange(&aes_id, &share_aes).unwrap();
    let frame = chacha.encrypt(&aes_id, b"hi").unwrap();
    assert!(matches!(
        aes.decrypt(&chacha_id, &frame),
        Err(EncryptionError::AlgorithmMismatch { .. })
    ));
}

#[test]
fn the_seed_flow_with_unsigned_shares_works() {
    let (a, b) = (
        manager(EncryptionConfig::default()),
        manager(EncryptionConfig::default()),
    );
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let a_share = a.generate_ephemeral_key_pair(&b_id).unwrap();
    let b_share = b.generate_ephemeral_key_pair(&a_id).unwrap();
    a.perform_key_exchange(&b_id, &b_share).unwrap();
    b.perform_key_exchange(&a_id, &a_share).unwrap();
    let frame = a.encrypt(&b_id, b"Hello, Bob!").unwrap();
    assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"Hello, Bob!");
    // A share is used once.
    assert_eq!(
        a.perform_key_exchange(&b_id, &b_share),
        Err(EncryptionError::NoPendingKeyExchange { peer: b_id })
    );
    a.rotate_keys().unwrap();
    b.rotate_keys().unwrap();
    a.prune_expired_keys();
    b.prune_expired_keys();
    let frame = b.encrypt(&a_id, b"Hi, Alice!").unwrap();
    assert_eq!(a.decrypt(&b_id, &frame).unwrap(), b"Hi, Alice!");
}

#[test]
fn ephemeral_keys_are_fresh_and_static_keys_reused_yet_sessions_differ() {
    let ephemeral = manager(EncryptionConfig::default());
    let peer = PeerId::random();
    let one = ephemeral.generate_ephemeral_key_pair(&peer).unwrap();
    let two = ephemeral.generate_ephemeral_key_pair(&peer).unwrap();
    assert_ne!(one.public_key(), two.public_key());

    let static_config = EncryptionConfig {
        use_ephemeral_keys: false,
        use_forward_secrecy: false,
        ..EncryptionConfig::default()
    };
    let (a, b) = (manager(static_config.clone()), manager(static_config));
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let mut first_frames = Vec::new();
    for _ in 0..2 {
        let a_share = a.generate_ephemeral_key_pair(&b_id).unwrap();
        let b_share = b.generate_ephemeral_key_pair(&a_id).unwrap();
        a.perform_key_exchange(&b_id, &b_share).unwrap();
        b.perform_key_exchange(&a_id, &a_share).unwrap();
        let frame = a.encrypt(&b_id, b"same counter, same plaintext").unwrap();
        assert_eq!(
            b.decrypt(&a_id, &frame).unwrap(),
            b"same counter, same plaintext"
        );
        first_frames.push((a_share, frame));
    }
    // Same X25519 key both times, but never the same key stream at counter 0.
    assert_eq!(
        first_frames[0].0.public_key(),
        first_frames[1].0.public_key()
    );
    assert_eq!(
        first_frames[0].1[..FRAME_HEADER_LEN],
        first_frames[1].1[..FRAME_HEADER_LEN]
    );
    assert_ne!(first_frames[0].1, first_frames[1].1);
}

#[test]
fn invalid_configs_are_refused() {
    let refuse = |config| EncryptionManager::new(Keypair::generate_ed25519(), config).unwrap_err();
    assert!(matches!(
        refuse(EncryptionConfig {
            use_ephemeral_keys: false,
            ..EncryptionConfig::default()
        }),
        EncryptionError::InvalidConfig(_)
    ));
    assert!(matches!(
        refuse(EncryptionConfig {
            key_rotation_interval: Duration::ZERO,
            ..EncryptionConfig::default()
        }),
        EncryptionError::InvalidConfig(_)
    ));
}

#[test]
fn low_order_public_keys_and_self_sessions_are_refused() {
    let a = manager(EncryptionConfig::default());
    let peer = PeerId::random();
    a.generate_ephemeral_key_pair(&peer).unwrap();
    let zero = KeyShare::from_bytes(&[0; KEY_SHARE_LEN]).unwrap();
    assert_eq!(
        a.perform_key_exchange(&peer, &zero),
        Err(EncryptionError::WeakPublicKey)
    );
    assert!(!a.has_session(&peer));
    let me = a.local_peer_id();
    assert_eq!(
        a.generate_ephemeral_key_pair(&me),
        Err(EncryptionError::SelfSession)
    );
}

#[test]
fn pending_exchanges_expire() {
    let (a, b) = (
        manager(EncryptionConfig::default()),
        manager(EncryptionConfig::default()),
    );
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    let now = Instant::now();
    a.generate_at(&b_id, now).unwrap();
    let b_share = b.generate_ephemeral_key_pair(&a_id).unwrap();
    assert_eq!(
        a.exchange_at(&b_id, &b_share, now + PENDING_EXCHANGE_TTL),
        Err(EncryptionError::NoPendingKeyExchange { peer: b_id })
    );
    a.generate_at(&b_id, now).unwrap();
    a.prune_at(now + PENDING_EXCHANGE_TTL);
    assert!(a.lock().pending.is_empty());
}

#[test]
fn debug_output_shows_no_key_material() {
    let (a, b) = pair(EncryptionConfig::default());
    let b_id = b.local_peer_id();
    let share = a.generate_ephemeral_key_pair(&b_id).unwrap();
    let printed = format!("{a:?} {share:?}");
    assert!(printed.contains("sessions: 1"), "{printed}");
    let state = a.lock();
    let session = &state.sessions[&b_id];
    for secret in [
        &session.send.keys.key[..],
        &session.send.next_chain[..],
        &session.recv.current.keys.key[..],
        &share.nonce[..],
    ] {
        let hex: String = secret[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert!(!printed.contains(&hex), "{printed}");
    }
}
