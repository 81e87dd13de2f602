#!/usr/bin/env bash
# Builds the browser package clients/wasm/pkg from crates/darkswap-wasm:
# cargo (profile wasm-release: opt-level z, LTO), wasm-bindgen (ES module
# and TypeScript types), binaryen's wasm-opt -Oz; then prints the .wasm's
# size raw and gzipped. Output: clients/wasm/pkg/darkswap_wasm.{js,d.ts}
# and darkswap_wasm_bg.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}"
./scripts/wasm-tools.sh
export PATH="${DARKSWAP_TOOLS_DIR:-$HOME/.cache/darkswap-tools}/bin:$PATH"

cargo build --locked -q -p darkswap-wasm --target wasm32-unknown-unknown --profile wasm-release
out=clients/wasm/pkg
rm -rf "$out"
wasm-bindgen --target web --out-dir "$out" --out-name darkswap_wasm \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/darkswap_wasm.wasm"
wasm="$out/darkswap_wasm_bg.wasm"
before=$(stat -c %s "$wasm")
# The features rustc's wasm32 target emits by default, no more: with
# --all-features Debian's wasm-opt writes type forms Chromium refuses.
wasm-opt -Oz --enable-bulk-memory --enable-mutable-globals --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-reference-types --enable-multivalue "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
printf 'darkswap-wasm package: %s\n' "$out"
printf '  darkswap_wasm_bg.wasm: %d KiB (%d KiB before wasm-opt), %d KiB gzipped\n' \
  $((raw / 1024)) $((before / 1024)) $((gz / 1024))
