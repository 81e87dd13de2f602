// figment's Jail API returns its (large) error type; fine in tests.
#![allow(clippy::result_large_err)]

use figment::Jail;
use serde_json::json;

use super::*;

fn no_overrides() -> serde_json::Value {
    json!({})
}

fn load_error(file: &str) -> String {
    ConfigFile::load(Some(file.as_ref()), no_overrides())
        .unwrap_err()
        .to_string()
}

#[test]
fn the_defaults_are_valid_and_the_libraries() {
    let file = ConfigFile::default();
    file.validate().unwrap();
    let book = OrderbookConfig::default();
    assert_eq!(file.order_refresh, book.refresh_interval);
    assert_eq!(file.order_ttl, book.ttl);
    assert_eq!(file.max_orders, book.max_orders);
    assert_eq!(file.max_orders_per_maker, book.max_orders_per_maker);
    assert_eq!(file.api.to_string(), DEFAULT_API);
}

#[test]
fn deploy_darkswap_toml_parses_and_equals_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/darkswap.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut from_file: ConfigFile = toml::from_str(&text).unwrap();
    // The data dir depends on the user; the file shows root's.
    from_file.data_dir = default_data_dir();
    assert_eq!(from_file, ConfigFile::default());
    // Every key is in the file, so none is left undocumented: set to its
    // default, or shown commented out when it has none.
    let table: toml::Table = text.parse().unwrap();
    assert!(table.keys().all(|k| ENV_KEYS.contains(&k.as_str())));
    for key in ENV_KEYS {
        let line = format!("{key} =");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&line) || l.starts_with(&format!("# {line}"))),
            "{key} is not in deploy/darkswap.toml"
        );
    }
}

#[test]
fn values_in_the_file_apply_and_the_rest_stay_default() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "darkswap.toml",
            r#"
                data_dir = "/srv/darkswap"
                api = "127.0.0.1:7171"
                listen = ["/ip4/0.0.0.0/tcp/4001"]
                mdns = false
                order_refresh = "1m"
                order_ttl = "5m 30s"
                max_orders_per_maker = 2
            "#,
        )?;
        let c = ConfigFile::load(Some("darkswap.toml".as_ref()), no_overrides()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/darkswap"));
        assert_eq!(c.api.port(), 7171);
        assert_eq!(c.listen, vec!["/ip4/0.0.0.0/tcp/4001".parse().unwrap()]);
        assert!(!c.mdns);
        assert_eq!(c.order_refresh, Duration::from_secs(60));
        assert_eq!(c.order_ttl, Duration::from_secs(330));
        assert_eq!(c.max_orders_per_maker, 2);
        assert_eq!(
            c.max_orders,
            ConfigFile::default().max_orders,
            "default kept"
        );
        Ok(())
    });
}

#[test]
fn the_environment_overrides_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "darkswap.toml",
            "max_orders = 50\nmax_orders_per_maker = 2\nanti_entropy_interval = \"1m\"\n",
        )?;
        jail.set_env("DARKSWAP_MAX_ORDERS_PER_MAKER", "7");
        jail.set_env("DARKSWAP_ANTI_ENTROPY_INTERVAL", "5s");
        jail.set_env("DARKSWAP_LISTEN", r#"["/ip4/127.0.0.1/tcp/4001"]"#);
        jail.set_env("DARKSWAP_MDNS", "false");
        // Variables of other programs (the relay's, the config path
        // itself) are not keys of this file.
        jail.set_env("DARKSWAP_RELAY_RELAY__MAX_CIRCUITS", "3");
        jail.set_env("DARKSWAP_CONFIG", "darkswap.toml");
        let c = ConfigFile::load(Some("darkswap.toml".as_ref()), no_overrides()).unwrap();
        assert_eq!(c.max_orders, 50, "from the file");
        assert_eq!(c.max_orders_per_maker, 7, "the environment beats the file");
        assert_eq!(c.anti_entropy_interval, Duration::from_secs(5));
        assert_eq!(c.listen, vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()]);
        assert!(!c.mdns);
        Ok(())
    });
}

#[test]
fn a_flag_overrides_the_environment() {
    Jail::expect_with(|jail| {
        jail.create_file("darkswap.toml", "max_orders_per_maker = 2\n")?;
        jail.set_env("DARKSWAP_MAX_ORDERS_PER_MAKER", "7");
        jail.set_env("DARKSWAP_ORDER_TTL", "20m");
        let flags = json!({ "max_orders_per_maker": 9, "mdns": false });
        let c = ConfigFile::load(Some("darkswap.toml".as_ref()), flags).unwrap();
        assert_eq!(c.max_orders_per_maker, 9, "the flag beats the environment");
        assert_eq!(
            c.order_ttl,
            Duration::from_secs(1200),
            "from the environment"
        );
        assert!(!c.mdns);
        Ok(())
    });
}

#[test]
fn flags_become_overrides_only_when_given() {
    use clap::Parser;

    let cli = crate::cli::Cli::try_parse_from([
        "darkswap",
        "--api",
        "127.0.0.1:0",
        "daemon",
        "--no-mdns",
        "--order-ttl",
        "20m",
        "--max-orders-per-maker",
        "3",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ])
    .unwrap();
    let crate::cli::Command::Daemon(args) = cli.command else {
        panic!("not the daemon command");
    };
    assert_eq!(
        args.overrides(cli.api.as_deref()),
        json!({
            "api": "127.0.0.1:0",
            "mdns": false,
            "order_ttl": "20m",
            "max_orders_per_maker": 3,
            "listen": ["/ip4/127.0.0.1/tcp/0"],
        })
    );
    Jail::expect_with(|_| {
        let c = ConfigFile::load(None, args.overrides(None)).unwrap();
        assert_eq!(c.order_ttl, Duration::from_secs(1200));
        assert_eq!(c.api.to_string(), DEFAULT_API);
        Ok(())
    });
}

#[test]
fn an_unknown_key_is_refused_naming_it_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("typo.toml", "max_orders_per_makr = 2\n")?;
        let e = load_error("typo.toml");
        assert!(e.contains("max_orders_per_makr"), "{e}");
        assert!(e.contains("typo.toml"), "{e}");
        Ok(())
    });
}

#[test]
fn a_bad_value_is_refused_naming_the_key_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("type.toml", "max_orders = \"many\"\n")?;
        let e = load_error("type.toml");
        assert!(e.contains("key `max_orders`"), "{e}");
        assert!(e.contains("type.toml"), "{e}");

        jail.create_file("duration.toml", "order_ttl = \"ten minutes\"\n")?;
        let e = load_error("duration.toml");
        assert!(
            e.contains("key `order_ttl`") && e.contains("ten minutes"),
            "{e}"
        );
        assert!(e.contains("duration.toml"), "{e}");

        jail.create_file("addr.toml", "listen = [\"/ip4/0.0.0.0/tcp/70000\"]\n")?;
        let e = load_error("addr.toml");
        assert!(e.contains("listen"), "{e}");

        jail.set_env("DARKSWAP_MAX_ORDERS", "lots");
        let e = ConfigFile::load(None, no_overrides())
            .unwrap_err()
            .to_string();
        assert!(e.contains("DARKSWAP_MAX_ORDERS"), "{e}");
        Ok(())
    });
}

#[test]
fn a_syntax_error_or_a_missing_file_is_refused_naming_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("broken.toml", "max_orders = [\n")?;
        let e = load_error("broken.toml");
        assert!(e.contains("broken.toml"), "{e}");

        let e = load_error("nowhere.toml");
        assert!(
            e.contains("nowhere.toml") && e.contains("does not exist"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn values_that_parse_but_cannot_work_are_refused_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("ttl.toml", "order_refresh = \"10m\"\norder_ttl = \"5m\"\n")?;
        let e = load_error("ttl.toml");
        assert!(
            e.contains("order_ttl") && e.contains("order_refresh"),
            "{e}"
        );

        jail.create_file("zero.toml", "max_orders_per_maker = 0\n")?;
        let e = load_error("zero.toml");
        assert!(
            e.contains("max_orders_per_maker must be greater than 0"),
            "{e}"
        );

        jail.create_file(
            "bans.toml",
            "ban_duration = \"2h\"\nmax_ban_duration = \"1h\"\n",
        )?;
        let e = load_error("bans.toml");
        assert!(e.contains("max_ban_duration"), "{e}");
        Ok(())
    });
}

#[test]
fn a_chain_ca_file_is_read_and_one_that_is_missing_or_not_pem_is_refused() {
    Jail::expect_with(|jail| {
        let trading = "trading = true\nbitcoin_network = \"regtest\"\n\
                       esplora_url = \"https://127.0.0.1:3002\"\n\
                       ord_url = \"https://127.0.0.1:8080\"\n";
        jail.create_file(
            "missing.toml",
            &format!("{trading}chain_ca_file = \"nowhere.pem\"\n"),
        )?;
        let e = load_error("missing.toml");
        assert!(e.contains("chain_ca_file nowhere.pem"), "{e}");

        jail.create_file("junk.pem", "not a certificate")?;
        jail.create_file(
            "junk.toml",
            &format!("{trading}chain_ca_file = \"junk.pem\"\n"),
        )?;
        let e = load_error("junk.toml");
        assert!(e.contains("extra root certificates"), "{e}");

        jail.create_file("plain.toml", trading)?;
        let options = ConfigFile::load(Some("plain.toml".as_ref()), no_overrides())
            .expect("https URLs without a CA file")
            .options();
        assert!(options.trading.expect("trading on").extra_roots.is_empty());
        Ok(())
    });
}

#[test]
fn the_relay_and_dht_keys_reach_the_node_configuration() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "darkswap.toml",
            r#"
                auto_relay = false
                relay_hop = true
                max_relay_connections = 5
                relay_check_interval = "10s"
                external_address = ["/ip4/203.0.113.7/tcp/4001"]
                kad_bucket_size = 16
                kad_record_ttl = "2h"
            "#,
        )?;
        jail.set_env("DARKSWAP_MIN_RELAY_CONNECTIONS", "2");
        let overrides = json!({ "relay_discovery": false });
        let options = ConfigFile::load(Some("darkswap.toml".as_ref()), overrides)
            .unwrap()
            .options();
        let relay = &options.relay;
        assert!(relay.enabled && relay.active && !relay.auto_relay && relay.hop);
        assert!(!relay.discovery);
        assert_eq!(relay.pool.max_relay_connections, 5);
        assert_eq!(relay.pool.min_relay_connections, 2);
        assert_eq!(
            relay.pool.connection_check_interval,
            Duration::from_secs(10)
        );
        assert_eq!(
            options.external_addresses,
            ["/ip4/203.0.113.7/tcp/4001".parse::<Multiaddr>().unwrap()]
        );
        assert_eq!(options.kad_bucket_size, 16);
        assert_eq!(options.kad_record_ttl, Duration::from_secs(7200));

        jail.set_env("DARKSWAP_MIN_RELAY_CONNECTIONS", "6");
        let error = ConfigFile::load(Some("darkswap.toml".as_ref()), no_overrides()).unwrap_err();
        assert!(
            error.to_string().contains("min_relay_connections (6)"),
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn the_relay_flags_become_their_keys() {
    use clap::Parser;

    let cli = crate::cli::Cli::try_parse_from([
        "darkswap",
        "daemon",
        "--no-auto-relay",
        "--no-relay-reservations",
        "--relay-hop",
        "--max-relay-connections",
        "4",
        "--relay-check-interval",
        "1m",
        "--external-address",
        "/ip4/203.0.113.7/tcp/4001",
        "--kad-bucket-size",
        "10",
        "--kad-record-ttl",
        "6h",
    ])
    .unwrap();
    let crate::cli::Command::Daemon(args) = cli.command else {
        panic!("not the daemon command");
    };
    assert_eq!(
        args.overrides(None),
        json!({
            "auto_relay": false,
            "relay_active": false,
            "relay_hop": true,
            "max_relay_connections": 4,
            "relay_check_interval": "1m",
            "external_address": ["/ip4/203.0.113.7/tcp/4001"],
            "kad_bucket_size": 10,
            "kad_record_ttl": "6h",
        })
    );
    Jail::expect_with(|_| {
        let options = ConfigFile::load(None, args.overrides(None))
            .unwrap()
            .options();
        assert!(!options.relay.auto_relay && !options.relay.active && options.relay.hop);
        assert_eq!(options.kad_record_ttl, Duration::from_secs(6 * 3600));
        Ok(())
    });
}

#[test]
fn the_webrtc_keys_and_flags_reach_the_daemon_and_need_a_signaling_relay() {
    use clap::Parser;

    let cli = crate::cli::Cli::try_parse_from([
        "darkswap",
        "daemon",
        "--webrtc",
        "--webrtc-signaling",
        "/ip4/203.0.113.7/tcp/9001/ws",
        "--webrtc-signaling",
        "/dns4/relay.example/tcp/443/wss",
        "--webrtc-signaling-port",
        "0",
    ])
    .unwrap();
    let crate::cli::Command::Daemon(args) = cli.command else {
        panic!("not the daemon command");
    };
    assert_eq!(
        args.overrides(None),
        json!({
            "webrtc": true,
            "webrtc_signaling": ["/ip4/203.0.113.7/tcp/9001/ws", "/dns4/relay.example/tcp/443/wss"],
            "webrtc_signaling_port": 0,
        })
    );
    Jail::expect_with(|jail| {
        let options = ConfigFile::load(None, args.overrides(None))
            .unwrap()
            .options();
        assert!(options.webrtc);
        assert_eq!(options.webrtc_signaling.len(), 2);
        assert_eq!(options.webrtc_signaling_port, 0);

        // On, with nowhere to register: refused, naming the keys.
        jail.create_file("alone.toml", "webrtc = true\n")?;
        let e = load_error("alone.toml");
        assert!(e.contains("webrtc = true needs webrtc_signaling"), "{e}");
        // A relay with the port off is nowhere either; with the default
        // port, its host is the signaling relay.
        let relay =
            "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        jail.create_file(
            "port0.toml",
            &format!("webrtc = true\nrelay = [\"{relay}\"]\nwebrtc_signaling_port = 0\n"),
        )?;
        assert!(load_error("port0.toml").contains("webrtc = true needs"));
        jail.set_env("DARKSWAP_WEBRTC_SIGNALING_PORT", "9443");
        jail.create_file(
            "relay.toml",
            &format!("webrtc = true\nrelay = [\"{relay}\"]\n"),
        )?;
        let options = ConfigFile::load(Some("relay.toml".as_ref()), no_overrides())
            .unwrap()
            .options();
        assert!(options.webrtc && options.webrtc_signaling.is_empty());
        assert_eq!(options.webrtc_signaling_port, 9443);
        assert!(matches!(
            options.webrtc_options.auth,
            darkswap_p2p::RelayAuth::None
        ));

        // Tokens on; a CA file that is missing or not PEM is refused.
        jail.set_env("DARKSWAP_WEBRTC_TOKENS", "true");
        let options = ConfigFile::load(Some("relay.toml".as_ref()), no_overrides())
            .unwrap()
            .options();
        assert!(matches!(
            options.webrtc_options.auth,
            darkswap_p2p::RelayAuth::Auto
        ));
        jail.create_file("missing.toml", "webrtc_ca_file = \"nowhere.pem\"\n")?;
        assert!(load_error("missing.toml").contains("webrtc_ca_file nowhere.pem"));
        jail.create_file("junk.pem", "not a certificate")?;
        jail.create_file("junk.toml", "webrtc_ca_file = \"junk.pem\"\n")?;
        assert!(load_error("junk.toml").contains("webrtc_ca_file junk.pem"));
        Ok(())
    });
}
