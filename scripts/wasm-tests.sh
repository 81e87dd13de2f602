#!/usr/bin/env bash
# DarkSwapWasm's wasm-bindgen tests in headless Chromium: cargo runs each
# test binary through wasm-bindgen-test-runner, which drives Debian's
# chromium with chromedriver (flags in crates/darkswap-wasm/webdriver.json).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}"
./scripts/wasm-tools.sh
export PATH="${DARKSWAP_TOOLS_DIR:-$HOME/.cache/darkswap-tools}/bin:$PATH"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=/usr/bin/chromedriver
# Bounded: a hung browser must not hold CI until its own timeout.
timeout 900 cargo test --locked -p darkswap-wasm --target wasm32-unknown-unknown
