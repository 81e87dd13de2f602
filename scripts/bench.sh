#!/usr/bin/env bash
# Runs the benchmark suite (issue 18): builds the release binaries of the
# relay, the daemon and the runner once, installs the reference tools the
# measures need (the runner installs Debian's iperf3, coturn and iptables
# and npm's `peer` itself when missing), then runs `darkswap-bench suite`,
# which records every measure in docs/benchmarks.json and regenerates the
# results of docs/benchmarks.md. Arguments go to `suite` (--only, --skip,
# --quick). Needs root (network namespaces, NFQUEUE). Not part of the test
# command: it takes about 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo build --release --locked -q -p darkswap-relay -p darkswap-cli -p darkswap-bench
exec "$CARGO_TARGET_DIR/release/darkswap-bench" suite "$@"
