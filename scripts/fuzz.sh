#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on the
# first crash (a panic, a failed invariant, or an AddressSanitizer report).
#
#   scripts/fuzz.sh              20 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 600          10 min per target
#   scripts/fuzz.sh 600 proto_envelope signaling_json
#
# Works on a stable toolchain: cargo-fuzz passes nightly-only flags (-Z), so
# RUSTC_BOOTSTRAP=1 is set for its builds only. Builds go to their own
# target dir (instrumented builds share nothing with normal ones). New
# inputs the fuzzer finds go to a scratch corpus beside the build, so longer
# runs build on earlier ones and the committed seeds in fuzz/corpus/ stay
# small. A crash leaves its input in fuzz/artifacts/<target>/; reproduce with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` (see docs/security-fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

export CARGO_TARGET_DIR="${DARKSWAP_FUZZ_TARGET_DIR:-$HOME/.cache/darkswap-fuzz-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Instrumented builds are heavy; on a small machine one job at a time keeps
# the rest of the system responsive. Override with CARGO_BUILD_JOBS.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
CARGO_FUZZ_VERSION=0.13.2
# AddressSanitizer works on stable x86_64 Linux (the runtime ships with
# rust-std); set DARKSWAP_FUZZ_SANITIZER=none where it does not.
sanitizer="${DARKSWAP_FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# Stable checks first (the fuzz crate is outside the workspace, so
# scripts/test.sh's fmt and clippy do not see it): formatting, lints, then
# the corpus tests (the committed corpus passes every check; the seeds are
# committed and reach what they should).
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --locked -q -- -D warnings
cargo test --manifest-path fuzz/Cargo.toml --locked -q

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

fuzz() {
  RUSTC_BOOTSTRAP=1 cargo fuzz "$@"
}

echo "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
fuzz build --sanitizer "$sanitizer" --target-dir "$CARGO_TARGET_DIR"

for target in "${targets[@]}"; do
  scratch="$CARGO_TARGET_DIR/corpus/$target"
  log="$CARGO_TARGET_DIR/logs/$target.log"
  mkdir -p "$scratch" "$(dirname "$log")"
  echo "fuzzing $target for ${seconds}s"
  # The first corpus directory receives new inputs; the second is read only.
  if ! fuzz run --sanitizer "$sanitizer" --target-dir "$CARGO_TARGET_DIR" \
    "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    # Show the panic or sanitizer report, not the fuzzer's progress lines.
    grep -v -E '^#[0-9]+' "$log" | tail -n 60 >&2
    echo "fuzz target $target FAILED; input in fuzz/artifacts/$target/, full log $log" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" || true
done
echo "fuzzing passed: ${targets[*]}, ${seconds}s each"
