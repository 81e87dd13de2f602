#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: installs
# what it needs (Debian's chromium, npm's playwright-core, cargo-fuzz), then
# formatting, lints, all tests, doc tests, examples, a short run of every
# fuzz target and the browser tests. Needs root for
# the browser tests' network namespace (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts live outside the clone so repeated runs (and CI) are warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "examples"
cargo run --locked -q -p darkswap-p2p --example simple_node

step "cargo test (unit, integration and doc tests; builds every example)"
cargo test --workspace --locked

step "fuzzing (each cargo-fuzz target for ${DARKSWAP_FUZZ_SECONDS:-20} s; scripts/fuzz.sh 600 to run longer)"
./scripts/fuzz.sh "${DARKSWAP_FUZZ_SECONDS:-20}"

step "JS client types (tsc checks the JSDoc; the committed .d.ts files are what it generates)"
npm ci --prefix clients/js --no-audit --no-fund --loglevel=error
./clients/js/scripts/check-types.sh

step "browser tests (Debian chromium + playwright-core, loopback netns)"
./scripts/browser-tests.sh
