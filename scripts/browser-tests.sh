#!/usr/bin/env bash
# Browser tests: Debian's Chromium driven by playwright-core against the real
# darkswap-relay (and, for the native peer test, the webrtc_example binary;
# for the Rust<->browser encryption test, the e2e_interop example; for the
# market page, the darkswap daemon and the darkswap-wasm package),
# inside a loopback-only network namespace so every ICE candidate is
# 127.0.0.1 and nothing leaves the machine. Needs root (ip netns). Installs
# what it needs: chromium from Debian, playwright-core from npm.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}"

if ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi
npm ci --prefix clients/js --no-audit --no-fund --loglevel=error
# nftables: the NAT routers of clients/js/test/nat.test.mjs.
if ! command -v nft >/dev/null; then
  echo "installing Debian's nftables"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nftables >/dev/null
fi
# certutil: clients/js/test/tls.test.mjs puts the generated CA in a fresh
# NSS database, the store Chromium on Linux trusts.
if ! command -v certutil >/dev/null; then
  echo "installing Debian's libnss3-tools"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq libnss3-tools >/dev/null
fi

# Build first: nothing outside the namespace is reachable from inside it.
cargo build --locked -q -p darkswap-relay --bin darkswap-relay
cargo build --locked -q -p darkswap-webrtc --example webrtc_example
cargo build --locked -q -p darkswap-p2p --example webrtc_network
cargo build --locked -q -p darkswap-e2e --example e2e_interop
export DARKSWAP_TEST_RELAY_BIN="$CARGO_TARGET_DIR/debug/darkswap-relay"
export DARKSWAP_TEST_WEBRTC_EXAMPLE="$CARGO_TARGET_DIR/debug/examples/webrtc_example"
export DARKSWAP_TEST_NETWORK_EXAMPLE="$CARGO_TARGET_DIR/debug/examples/webrtc_network"
export DARKSWAP_TEST_E2E_INTEROP="$CARGO_TARGET_DIR/debug/examples/e2e_interop"

ns="dsw-browser-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" node --test --test-concurrency=1 clients/js/test/

# The market page on the darkswap-wasm package, against the real relay and
# daemon. Its namespace also has a veth pair with 10.99.0.1: the native
# WebRTC stack gathers no candidate on loopback, so WebRTC-direct listeners
# use that address (nothing leaves the namespace either way).
cargo build --locked -q -p darkswap-cli --bin darkswap
# The test chain the trade tests fund wallets on and broadcast to.
cargo build --locked -q -p darkswap-chain --features test-server --bin chain-test-server
# A hostile peer the page dials directly, for the forged-order test.
cargo build --locked -q -p darkswap-testkit --bin forge-order
./scripts/build-wasm-package.sh
npm ci --prefix clients/web --no-audit --no-fund --loglevel=error
# The page against the package's types (index.d.ts and the generated ones).
npm run --prefix clients/web --silent typecheck
export DARKSWAP_TEST_DARKSWAP_BIN="$CARGO_TARGET_DIR/debug/darkswap"
export DARKSWAP_TEST_HOST_IP=10.99.0.1
web="dsw-market-$$"
ip netns add "$web"
trap 'ip netns del "$ns" 2>/dev/null || true; ip netns del "$web" 2>/dev/null || true' EXIT
ip -n "$web" link set lo up
ip -n "$web" link add v0 type veth peer name v1
ip -n "$web" addr add "$DARKSWAP_TEST_HOST_IP/24" dev v0
ip -n "$web" link set v0 up
ip -n "$web" link set v1 up
ip netns exec "$web" node --test --test-concurrency=1 clients/web/test/
