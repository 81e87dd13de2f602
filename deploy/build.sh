#!/usr/bin/env bash
# Builds the relay (darkswap-relay) and the daemon (darkswap), optionally
# makes TLS certificates with deploy/generate-certs.sh, and optionally runs
# the relay with a config file. See docs/operations.md, "Deploy".
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/build.sh [--release] [--certs DIR [--cert-hosts HOSTS]] [--run CONFIG]

Builds darkswap-relay and darkswap (debug by default) into $CARGO_TARGET_DIR
(default ~/.cache/darkswap-target, as scripts/test.sh) and prints where.

  --release      build with the release profile
  --certs DIR    then make a private CA and a TLS certificate for the relay in DIR
                 with deploy/generate-certs.sh (for [tls] cert_file and key_file)
  --cert-hosts HOSTS
                 names and addresses the certificate is for, separated by spaces
                 [default: generate-certs.sh's, "localhost 127.0.0.1 ::1"]
  --run CONFIG   then run the relay in the foreground: darkswap-relay --config CONFIG
                 (Ctrl-C stops it)
  -h, --help     show this help

Examples:
  deploy/build.sh --release
  deploy/build.sh --certs /tmp/relay-certs --cert-hosts "relay.example.org" --run my.toml
EOF
}

die() {
  printf 'build.sh: %s\n' "$*" >&2
  exit 2
}

profile=debug
certs_dir=
cert_hosts=
run_config=
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --certs)
      [ $# -ge 2 ] || die "--certs needs a directory"
      certs_dir=$2
      shift
      ;;
    --cert-hosts)
      [ $# -ge 2 ] || die "--cert-hosts needs a list of hosts"
      cert_hosts=$2
      shift
      ;;
    --run)
      [ $# -ge 2 ] || die "--run needs a config file"
      run_config=$2
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: $1"
      ;;
  esac
  shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
# Check what --run and --certs need before a build of several minutes.
if [ -n "$run_config" ] && [ ! -f "$run_config" ]; then
  die "config file $run_config does not exist"
fi
generate_certs="$root/deploy/generate-certs.sh"
if [ -n "$cert_hosts" ] && [ -z "$certs_dir" ]; then
  die "--cert-hosts goes with --certs DIR"
fi
if [ -n "$certs_dir" ] && [ ! -f "$generate_certs" ]; then
  die "--certs: $generate_certs does not exist (it comes with the relay's TLS support)"
fi

# The shared, warm target directory of scripts/test.sh, so a build here
# reuses what the tests compiled.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}"
cargo_flags=(--locked -p darkswap-relay -p darkswap-cli)
if [ "$profile" = release ]; then
  cargo_flags+=(--release)
fi
(cd "$root" && cargo build "${cargo_flags[@]}")

relay="$CARGO_TARGET_DIR/$profile/darkswap-relay"
printf 'built %s\n      %s\n' "$relay" "$CARGO_TARGET_DIR/$profile/darkswap"

if [ -n "$certs_dir" ]; then
  bash "$generate_certs" "$certs_dir" ${cert_hosts:+--hosts "$cert_hosts"}
fi

if [ -n "$run_config" ]; then
  printf 'running %s --config %s\n' "$relay" "$run_config"
  # exec: the relay gets the terminal's signals itself and shuts down cleanly.
  exec "$relay" --config "$run_config"
fi
