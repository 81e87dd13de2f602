#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: installs
# what it needs (Debian's chromium, npm's playwright-core and typescript,
# cargo-fuzz, the wasm32 Rust target), then formatting, lints (also without
# default features), the deployment files' checks (shellcheck, systemd-analyze),
# the wasm32 build of the sans-IO core, docs, all tests,
# doc tests, examples, the NAT lab (3 trials per cell), a short run of every
# fuzz target, the JS types check and the browser tests. Needs root for the
# network namespaces of the NAT lab and the browser tests (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts live outside the clone so repeated runs (and CI) are warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# No incremental caches: every clone (CI's lives in a fresh directory each
# run) left tens of GB of them in the shared target directory until the disk
# filled; dependencies, the bulk of the build, are never incremental anyway.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Each step's header says how long the run has taken so far, so a slow CI
# run shows which step took the time.
started=$SECONDS
step() { printf '\n==> [%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

step "toolchain components"
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "no source file over 800 lines (a longer file holds two things; tests may be longer while they stay one topic)"
too_long=$(git ls-files -z -- '*.rs' '*.js' '*.mjs' '*.ts' ':!:*/tests/*' ':!:*/tests.rs' ':!:*.test.mjs' ':!:*.d.ts' \
  | xargs -0 wc -l | awk '$2 != "total" && $1 > 800 { print "  " $2 ": " $1 " lines" }')
if [ -n "$too_long" ]; then
  printf 'files over 800 lines:\n%s\n' "$too_long"
  exit 1
fi

step "deployment files (shellcheck on every *.sh, systemd-analyze verify/security on the units, compose and Prometheus files, deploy.sh against stub ssh)"
./scripts/deploy-checks.sh

step "alert rules: promtool check rules, and promtool test rules with a unit test per alert (Debian's prometheus; cargo test then runs a real Prometheus against a relay and two daemons)"
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "installing Debian's prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules deploy/prometheus-alerts.yml
promtool test rules deploy/prometheus-alerts.test.yml

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo clippy --no-default-features, for every crate that has features"
for crate in $(cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["features"]:
        print(p["name"])'); do
  cargo clippy -p "$crate" --no-default-features --all-targets --locked -- -D warnings
done

step "wasm32: the sans-IO core, the SDK and DarkSwapWasm build and pass clippy for the browser"
if command -v rustup >/dev/null; then
  rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
fi
./scripts/wasm-tools.sh
cargo build -p darkswap-core --target wasm32-unknown-unknown --locked -q
cargo clippy -p darkswap-p2p --lib --target wasm32-unknown-unknown --locked -- -D warnings
cargo clippy -p darkswap-wasm --lib --tests --target wasm32-unknown-unknown --locked -- -D warnings

step "cargo doc (warnings and broken intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings -D rustdoc::broken_intra_doc_links" \
  cargo doc --workspace --no-deps --locked -q

step "examples (each exits non-zero if what it demonstrates does not hold)"
cargo run --locked -q -p darkswap-p2p --example simple_node
cargo run --locked -q -p darkswap-p2p --example auth_relay_example
cargo run --locked -q -p darkswap-p2p --example relay_connection_example
cargo run --locked -q -p darkswap-p2p --example metrics_example
cargo run --locked -q -p darkswap-p2p --example metrics_server -- --metrics 127.0.0.1:0 --self-check
cargo run --locked -q -p darkswap-e2e --example encryption_example
cargo run --locked -q -p darkswap-webrtc --example relay_example

step "cargo test (unit, integration and doc tests; builds every example)"
# nftables for the NAT routers of the NAT-lab tests (darkswap-natlab's WebRTC
# test here, the nat-lab matrix below).
if ! command -v nft >/dev/null; then
  echo "installing Debian's nftables"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nftables >/dev/null
fi
cargo test --workspace --locked

step "wasm-bindgen tests of DarkSwapWasm in headless Chromium (wasm-bindgen-test-runner, Debian's chromedriver)"
./scripts/wasm-tests.sh

step "NAT lab (root: daemons behind nftables NAT routers in network namespaces; 3 trials per cell, regenerates docs/nat-matrix.md)"
cargo build --locked -q -p darkswap-natlab -p darkswap-cli -p darkswap-relay
"$CARGO_TARGET_DIR/debug/nat-lab" --trials 3 --out docs/nat-matrix.md

step "fuzzing (each cargo-fuzz target for ${DARKSWAP_FUZZ_SECONDS:-20} s; scripts/fuzz.sh 600 to run longer)"
./scripts/fuzz.sh "${DARKSWAP_FUZZ_SECONDS:-20}"

step "JS client types (tsc checks the JSDoc; the committed .d.ts files are what it generates)"
npm ci --prefix clients/js --no-audit --no-fund --loglevel=error
./clients/js/scripts/check-types.sh

step "browser tests (Debian chromium + playwright-core, loopback netns)"
./scripts/browser-tests.sh

step "done"
