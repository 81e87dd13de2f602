#!/usr/bin/env bash
# Installs the relay on a host over ssh as a systemd service, restarts it and
# waits for its /health. See docs/operations.md, "Deploy".
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/deploy.sh HOST [--binary PATH] [--config PATH] [--env PATH]
                             [--health-url URL]

Copies the relay binary, its config and deploy/darkswap-relay.service to HOST
(anything ssh accepts: host, user@host, an ssh_config alias), installs them as
  /usr/local/bin/darkswap-relay
  /etc/darkswap-relay/config.toml
  /etc/darkswap-relay/env                   (only with --env; mode 0600)
  /etc/systemd/system/darkswap-relay.service
creates the system user darkswap-relay if it is missing, then runs
systemctl daemon-reload, enable and restart, and waits until
`curl -fsS URL` on HOST answers. Exits non-zero if it never does.
HOST needs systemd, coreutils and curl; the install runs as the ssh user,
so log in as root or set SUDO=sudo.

  --binary PATH      relay binary [default: $CARGO_TARGET_DIR/release/darkswap-relay,
                     CARGO_TARGET_DIR defaulting to ~/.cache/darkswap-target;
                     deploy/build.sh --release builds it]
  --config PATH      relay config [default: deploy/config.toml]
  --env PATH         environment overrides (deploy/.env.example) [default: none,
                     an env file already on HOST is left as it is]
  --health-url URL   checked on HOST [default: http://127.0.0.1:9090/health,
                     the relay's default metrics.listen]
  -h, --help         show this help

Environment:
  SSH             ssh command and options [default: ssh], e.g. "ssh -p 2222"
  SCP             scp command and options [default: scp], e.g. "scp -P 2222"
  SUDO            prefix for the install and systemctl on HOST, e.g. sudo [default: none]
  HEALTH_TIMEOUT  seconds to wait for the health check [default: 30]
  HEALTH_INTERVAL seconds between health checks [default: 1]
  DESTDIR         install under this directory on HOST instead of / (staging, tests);
                  useradd and systemctl still run
EOF
}

die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 2
}

step() { printf '==> %s\n' "$*"; }

root=$(cd "$(dirname "$0")/.." && pwd)
host=
binary="${CARGO_TARGET_DIR:-$HOME/.cache/darkswap-target}/release/darkswap-relay"
config="$root/deploy/config.toml"
env_file=
unit="$root/deploy/darkswap-relay.service"
health_url=http://127.0.0.1:9090/health

while [ $# -gt 0 ]; do
  case "$1" in
    --binary | --config | --env | --health-url)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --binary) binary=$2 ;;
        --config) config=$2 ;;
        --env) env_file=$2 ;;
        --health-url) health_url=$2 ;;
      esac
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      usage >&2
      die "unknown option: $1"
      ;;
    *)
      [ -z "$host" ] || die "one HOST only (got $host and $1)"
      host=$1
      ;;
  esac
  shift
done

if [ -z "$host" ]; then
  usage >&2
  die "HOST is missing"
fi
# Every local file is checked before anything touches the host.
for file in "$binary" "$config" "$unit" ${env_file:+"$env_file"}; do
  [ -f "$file" ] || die "$file does not exist"
done

read -r -a ssh_cmd <<<"${SSH:-ssh}"
read -r -a scp_cmd <<<"${SCP:-scp}"
sudo=${SUDO:-}
health_timeout=${HEALTH_TIMEOUT:-30}
health_interval=${HEALTH_INTERVAL:-1}
destdir=${DESTDIR:-}

# ssh joins its arguments into one line for the remote shell: quote each.
quoted() {
  local line
  line=$(printf '%q ' "$@")
  printf '%s' "${line% }"
}
remote() { "${ssh_cmd[@]}" "$host" "$(quoted "$@")"; }

# Runs on HOST as root (or the ssh user with SUDO): POSIX sh, the files in
# $1, install root in $2 (DESTDIR), "1" in $3 if an env file came.
install_script() {
  cat <<'EOF'
set -eu
tmp=$1 dest=$2 has_env=$3
# The unit's User=: a system user with no login and no home of its own
# (its state directory is made by systemd).
if ! id -u darkswap-relay >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/darkswap-relay --no-create-home \
    --shell /usr/sbin/nologin darkswap-relay
fi
mkdir -p "$dest/usr/local/bin" "$dest/etc/systemd/system"
install -d -m 0755 "$dest/etc/darkswap-relay"
# A new name, then a rename: a running binary is never written over, and
# the service never sees half a file.
install -m 0755 "$tmp/darkswap-relay" "$dest/usr/local/bin/.darkswap-relay.new"
mv -f "$dest/usr/local/bin/.darkswap-relay.new" "$dest/usr/local/bin/darkswap-relay"
install -m 0644 "$tmp/config.toml" "$dest/etc/darkswap-relay/config.toml"
if [ "$has_env" = 1 ]; then
  # Read by systemd (root) only: it may hold the TURN secret.
  install -m 0600 "$tmp/env" "$dest/etc/darkswap-relay/env"
fi
install -m 0644 "$tmp/darkswap-relay.service" "$dest/etc/systemd/system/darkswap-relay.service"
rm -rf "$tmp"
systemctl daemon-reload
systemctl enable darkswap-relay.service
# restart, not start: an upgrade must run the new binary and config.
systemctl restart darkswap-relay.service
EOF
}

step "copying to $host"
tmp=$(remote mktemp -d)
[ -n "$tmp" ] || die "mktemp -d on $host printed nothing"
"${scp_cmd[@]}" "$binary" "$host:$tmp/darkswap-relay"
"${scp_cmd[@]}" "$config" "$host:$tmp/config.toml"
"${scp_cmd[@]}" "$unit" "$host:$tmp/darkswap-relay.service"
has_env=0
if [ -n "$env_file" ]; then
  "${scp_cmd[@]}" "$env_file" "$host:$tmp/env"
  has_env=1
fi

step "installing on $host and restarting darkswap-relay"
# shellcheck disable=SC2086 # $sudo is a command prefix, empty or e.g. "sudo -n".
install_script | remote $sudo sh -s -- "$tmp" "$destdir" "$has_env"

step "waiting up to ${health_timeout}s for $health_url on $host"
deadline=$((SECONDS + health_timeout))
while :; do
  # Each check is bounded too: curl's own limit, and timeout around an ssh
  # that might hang on the network.
  if body=$(timeout 15 "${ssh_cmd[@]}" "$host" "$(quoted curl -fsS --max-time 5 "$health_url")" 2>/dev/null); then
    printf '%s\n' "$body"
    step "darkswap-relay is up on $host"
    exit 0
  fi
  [ "$SECONDS" -lt "$deadline" ] || break
  sleep "$health_interval"
done

printf 'deploy.sh: %s did not answer on %s within %ss; the service:\n' \
  "$health_url" "$host" "$health_timeout" >&2
# shellcheck disable=SC2086 # as above
remote $sudo systemctl --no-pager status darkswap-relay.service >&2 || true
# shellcheck disable=SC2086
remote $sudo journalctl --no-pager -n 30 -u darkswap-relay.service >&2 || true
exit 1
