#!/usr/bin/env bash
# What building and testing the browser node needs, installed once and kept:
# clang (secp256k1's C, built for wasm32), binaryen's wasm-opt, Debian's
# chromium and chromedriver, and wasm-bindgen-cli at exactly the version of
# the wasm-bindgen crate in Cargo.lock (the CLI refuses any other), under
# ~/.cache/darkswap-tools so later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v clang >/dev/null || missing+=(clang)
command -v wasm-opt >/dev/null || missing+=(binaryen)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
tools="${DARKSWAP_TOOLS_DIR:-$HOME/.cache/darkswap-tools}"
if [ "$("$tools/bin/wasm-bindgen" --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  echo "installing wasm-bindgen-cli $version into $tools (a few minutes, once)"
  cargo install -q --root "$tools" wasm-bindgen-cli --version "$version" --force
fi
