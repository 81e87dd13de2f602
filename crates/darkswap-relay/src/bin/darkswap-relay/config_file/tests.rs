// figment's Jail API returns its (large) error type; fine in tests.
#![allow(clippy::result_large_err)]

use figment::Jail;

use super::*;

// deploy/.env.example against the configuration's keys.
mod env_example;

fn no_overrides() -> serde_json::Value {
    serde_json::json!({})
}

#[test]
fn the_defaults_are_valid_and_the_librarys() {
    let file = ConfigFile::default();
    file.validate().unwrap();
    assert_eq!(file.relay_config().unwrap(), RelayConfig::default());
}

#[test]
fn deploy_config_toml_matches_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut from_file: ConfigFile = toml::from_str(&text).unwrap();
    // The data dir is platform-specific; the file shows the Linux one.
    from_file.data_dir = darkswap_relay::config::default_data_dir();
    assert_eq!(from_file, ConfigFile::default());
}

#[test]
fn toml_then_env_then_overrides() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "relay.toml",
            r#"
                [relay]
                max_circuits = 7
                max_reservations = 8
                [metrics]
                listen = "127.0.0.1:9999"
            "#,
        )?;
        jail.set_env("DARKSWAP_RELAY_RELAY__MAX_RESERVATIONS", "9");
        jail.set_env("DARKSWAP_RELAY_LOG__FORMAT", "json");
        let overrides = serde_json::json!({ "metrics": { "listen": "127.0.0.1:1234" } });
        let file = ConfigFile::load(Some("relay.toml".as_ref()), overrides).unwrap();
        let c = file.relay_config().unwrap();
        assert_eq!(c.hop.max_circuits, 7, "from TOML");
        assert_eq!(c.hop.max_reservations, 9, "env beats TOML");
        assert_eq!(file.log.format, LogFormat::Json, "from env");
        assert_eq!(c.admin_http.listen.port(), 1234, "flags beat everything");
        assert_eq!(c.hop.max_circuits_per_peer, 16, "default kept");
        Ok(())
    });
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("a.toml", "[relay]\nmax_circuitz = 3\n")?;
        let e = ConfigFile::load(Some("a.toml".as_ref()), no_overrides())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_circuitz"), "{e}");

        jail.create_file("b.toml", "[metrics]\nlisten = \"127.0.0.1:99999\"\n")?;
        let e = ConfigFile::load(Some("b.toml".as_ref()), no_overrides())
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.listen"), "{e}");

        jail.create_file(
            "c.toml",
            "[network]\nlisten_addresses = [\"/ip4/0.0.0.0/tcp/70000\"]\n",
        )?;
        let e = ConfigFile::load(Some("c.toml".as_ref()), no_overrides())
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.listen_addresses"), "{e}");

        jail.create_file("d.toml", "[relay]\nmax_circuits = 0\n")?;
        let e = ConfigFile::load(Some("d.toml".as_ref()), no_overrides())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("relay.max_circuits must be greater than 0"),
            "{e}"
        );

        jail.set_env("DARKSWAP_RELAY_RELAY__NOPE", "1");
        let e = ConfigFile::load(None, no_overrides())
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        Ok(())
    });
}

#[test]
fn the_public_port_deadlines_load_and_one_address_cannot_hold_every_socket() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "deadlines.toml",
            "[signaling]\nrequest_head_timeout_secs = 3\nrequest_body_timeout_secs = 4\n",
        )?;
        let file = ConfigFile::load(Some("deadlines.toml".as_ref()), no_overrides()).unwrap();
        let c = file.relay_config().unwrap();
        assert_eq!(c.signaling.request_head_timeout, Duration::from_secs(3));
        assert_eq!(c.signaling.request_body_timeout, Duration::from_secs(4));

        jail.create_file("zero.toml", "[signaling]\nrequest_head_timeout_secs = 0\n")?;
        let e = ConfigFile::load(Some("zero.toml".as_ref()), no_overrides())
            .unwrap_err()
            .to_string();
        assert!(e.contains("signaling.request_head_timeout_secs"), "{e}");

        // 1 peer + 2 × 1 circuit + 64 spare = 67 sockets.
        let small = "[signaling]\nmax_peers = 1\n[ws_relay]\nmax_circuits = 1\n";
        jail.create_file(
            "fits.toml",
            &format!("{small}[limits]\nmax_connections_per_ip = 66\n"),
        )?;
        ConfigFile::load(Some("fits.toml".as_ref()), no_overrides()).unwrap();
        jail.create_file(
            "all.toml",
            &format!("{small}[limits]\nmax_connections_per_ip = 67\n"),
        )?;
        let e = ConfigFile::load(Some("all.toml".as_ref()), no_overrides())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limits.max_connections_per_ip must be below"),
            "{e}"
        );
        assert!(e.contains("67 sockets"), "{e}");
        Ok(())
    });
}

#[test]
fn a_missing_file_is_an_error() {
    let e = ConfigFile::load(Some("/nonexistent/relay.toml".as_ref()), no_overrides()).unwrap_err();
    assert!(e.to_string().contains("does not exist"));
}

#[test]
fn peer_auth_section_parses_and_validates() {
    let config: ConfigFile = toml::from_str(
        r#"
        [peer_auth]
        method = "public_key"
        require_auth = true
        min_level = "relay"
        authorized_keys = { "12D3KooWLRPJAA5o6dWFi6XG8ofJsaGAuc5tnvJVBcQxYh3GTn8N" = "admin" }
        "#,
    )
    .unwrap();
    assert_eq!(config.peer_auth.method, AuthMethod::PublicKey);
    assert_eq!(config.peer_auth.min_level, AuthorizationLevel::Relay);
    config.validate().unwrap();
    let level = config.relay_config().unwrap().peer_auth.authorized_keys;
    assert_eq!(level.values().next(), Some(&AuthorizationLevel::Admin));

    let mut bad = ConfigFile::default();
    bad.peer_auth.method = AuthMethod::SharedKey;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("shared_key_file")
    );
    let mut bad = ConfigFile::default();
    bad.peer_auth.authorized_keys = [("nope".to_owned(), AuthorizationLevel::Admin)].into();
    assert!(bad.validate().unwrap_err().to_string().contains("nope"));
}
