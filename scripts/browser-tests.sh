#!/usr/bin/env bash
# Browser tests: Debian's Chromium driven by playwright-core against the real
# darkswap-relay (and, for the native peer test, the webrtc_example binary;
# for the Rust<->browser encryption test, the e2e_interop example),
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

# Build first: nothing outside the namespace is reachable from inside it.
cargo build --locked -q -p darkswap-relay --bin darkswap-relay
cargo build --locked -q -p darkswap-webrtc --example webrtc_example
cargo build --locked -q -p darkswap-e2e --example e2e_interop
export DARKSWAP_TEST_RELAY_BIN="$CARGO_TARGET_DIR/debug/darkswap-relay"
export DARKSWAP_TEST_WEBRTC_EXAMPLE="$CARGO_TARGET_DIR/debug/examples/webrtc_example"
export DARKSWAP_TEST_E2E_INTEROP="$CARGO_TARGET_DIR/debug/examples/e2e_interop"

ns="dsw-browser-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" node --test --test-concurrency=1 clients/js/test/
