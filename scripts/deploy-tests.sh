#!/usr/bin/env bash
# Tests deploy/deploy.sh without a host: SSH and SCP are stubs that log each
# call and run the "remote" side locally, installing under DESTDIR in a temp
# directory, with stub systemctl, journalctl, curl and sudo that log their
# calls. Checks the order of the steps, the installed files and their modes,
# and that an unanswered /health fails within HEALTH_TIMEOUT. Takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stubs="$work/stubs"
mkdir -p "$stubs"
export DEPLOY_TEST_LOG="$work/log" DEPLOY_TEST_STATE="$work/state"

# ssh HOST LINE: the remote shell runs LINE; here sh does, with the stubs
# first on PATH.
cat >"$stubs/fake-ssh" <<'EOF'
#!/bin/sh
host=$1
shift
printf 'ssh %s: %s\n' "$host" "$*" >>"$DEPLOY_TEST_LOG"
PATH="$(dirname "$0")/remote:$PATH" exec sh -c "$*"
EOF
# scp SRC HOST:DEST
cat >"$stubs/fake-scp" <<'EOF'
#!/bin/sh
printf 'scp %s -> %s\n' "$(basename "$1")" "$2" >>"$DEPLOY_TEST_LOG"
exec cp "$1" "${2#*:}"
EOF
mkdir -p "$stubs/remote"
cat >"$stubs/remote/sudo" <<'EOF'
#!/bin/sh
printf 'sudo %s\n' "$*" >>"$DEPLOY_TEST_LOG"
exec "$@"
EOF
# restart starts the "service"; curl answers once it runs, unless the test
# makes the service never answer.
cat >"$stubs/remote/systemctl" <<'EOF'
#!/bin/sh
printf 'systemctl %s\n' "$*" >>"$DEPLOY_TEST_LOG"
if [ "$1" = restart ]; then touch "$DEPLOY_TEST_STATE.running"; fi
EOF
# The service user does not exist until useradd "creates" it.
cat >"$stubs/remote/id" <<'EOF'
#!/bin/sh
printf 'id %s\n' "$*" >>"$DEPLOY_TEST_LOG"
[ -e "$DEPLOY_TEST_STATE.user" ]
EOF
cat >"$stubs/remote/useradd" <<'EOF'
#!/bin/sh
printf 'useradd %s\n' "$*" >>"$DEPLOY_TEST_LOG"
touch "$DEPLOY_TEST_STATE.user"
EOF
cat >"$stubs/remote/journalctl" <<'EOF'
#!/bin/sh
printf 'journalctl %s\n' "$*" >>"$DEPLOY_TEST_LOG"
EOF
cat >"$stubs/remote/curl" <<'EOF'
#!/bin/sh
printf 'curl %s\n' "$*" >>"$DEPLOY_TEST_LOG"
if [ -e "$DEPLOY_TEST_STATE.running" ] && [ -z "${DEPLOY_TEST_NEVER_HEALTHY:-}" ]; then
  echo '{"status":"ok"}'
  exit 0
fi
echo "curl: (7) Failed to connect" >&2
exit 7
EOF
chmod +x "$stubs/fake-ssh" "$stubs/fake-scp" "$stubs/remote/"*

printf '#!/bin/sh\necho relay\n' >"$work/darkswap-relay"
printf 'DARKSWAP_RELAY_LOG__LEVEL=debug\n' >"$work/env"

fail() {
  printf 'deploy-tests: %s\n' "$*" >&2
  if [ -f "$DEPLOY_TEST_LOG" ]; then
    printf -- '--- calls:\n' >&2
    cat "$DEPLOY_TEST_LOG" >&2
  fi
  exit 1
}

# Runs deploy.sh with the stubs; its exit code in $rc, stderr in $work/stderr.
run_deploy() {
  rm -rf "$work/root" "$DEPLOY_TEST_LOG" "$DEPLOY_TEST_STATE.running"
  mkdir -p "$work/root"
  rc=0
  SSH="$stubs/fake-ssh" SCP="$stubs/fake-scp" DESTDIR="$work/root" \
    HEALTH_INTERVAL=0.1 deploy/deploy.sh "$@" >"$work/stdout" 2>"$work/stderr" || rc=$?
}

mode() { stat -c %a "$1"; }

echo "deploy.sh: installs, reloads, enables, restarts, then waits for /health"
SUDO=sudo HEALTH_TIMEOUT=5 run_deploy relay.example --binary "$work/darkswap-relay" \
  --env "$work/env"
[ "$rc" = 0 ] || fail "exit $rc: $(cat "$work/stderr")"
tmp=$(sed -n 's/^scp darkswap-relay -> relay.example://p' "$DEPLOY_TEST_LOG" | xargs dirname)
[ -n "$tmp" ] || fail "no copy of the binary"
expected="ssh relay.example: mktemp -d
scp darkswap-relay -> relay.example:TMP/darkswap-relay
scp config.toml -> relay.example:TMP/config.toml
scp darkswap-relay.service -> relay.example:TMP/darkswap-relay.service
scp env -> relay.example:TMP/env
ssh relay.example: sudo sh -s -- TMP ROOT 1
sudo sh -s -- TMP ROOT 1
id -u darkswap-relay
useradd --system --user-group --home-dir /var/lib/darkswap-relay --no-create-home --shell /usr/sbin/nologin darkswap-relay
systemctl daemon-reload
systemctl enable darkswap-relay.service
systemctl restart darkswap-relay.service
ssh relay.example: curl -fsS --max-time 5 http://127.0.0.1:9090/health
curl -fsS --max-time 5 http://127.0.0.1:9090/health"
actual=$(sed -e "s|$tmp|TMP|g" -e "s|$work/root|ROOT|g" "$DEPLOY_TEST_LOG")
[ "$actual" = "$expected" ] || fail "calls differ; expected:
$expected"
grep -q '"status":"ok"' "$work/stdout" || fail "the health answer is not shown"
[ ! -e "$tmp" ] || fail "the remote temp dir $tmp is left behind"
root="$work/root"
cmp -s "$work/darkswap-relay" "$root/usr/local/bin/darkswap-relay" || fail "binary not installed"
cmp -s deploy/config.toml "$root/etc/darkswap-relay/config.toml" || fail "config not installed"
cmp -s deploy/darkswap-relay.service "$root/etc/systemd/system/darkswap-relay.service" ||
  fail "unit not installed"
cmp -s "$work/env" "$root/etc/darkswap-relay/env" || fail "env not installed"
[ "$(mode "$root/usr/local/bin/darkswap-relay")" = 755 ] || fail "binary mode"
[ "$(mode "$root/etc/darkswap-relay/config.toml")" = 644 ] || fail "config mode"
[ "$(mode "$root/etc/darkswap-relay/env")" = 600 ] || fail "env mode (it may hold secrets)"
[ "$(mode "$root/etc/systemd/system/darkswap-relay.service")" = 644 ] || fail "unit mode"

echo "deploy.sh: a second deploy keeps the existing user and restarts the service"
HEALTH_TIMEOUT=5 run_deploy relay.example --binary "$work/darkswap-relay"
[ "$rc" = 0 ] || fail "exit $rc: $(cat "$work/stderr")"
if grep -q '^useradd' "$DEPLOY_TEST_LOG"; then fail "useradd ran for an existing user"; fi
grep -q '^systemctl restart darkswap-relay.service' "$DEPLOY_TEST_LOG" || fail "no restart"

echo "deploy.sh: a relay that never answers /health fails within HEALTH_TIMEOUT, showing its status"
start=$SECONDS
DEPLOY_TEST_NEVER_HEALTHY=1 HEALTH_TIMEOUT=1 run_deploy relay.example --binary "$work/darkswap-relay"
[ "$rc" = 1 ] || fail "exit $rc, expected 1"
[ $((SECONDS - start)) -le 10 ] || fail "took $((SECONDS - start)) s for a 1 s timeout"
grep -q 'did not answer' "$work/stderr" || fail "no message: $(cat "$work/stderr")"
[ "$(grep -c '^curl ' "$DEPLOY_TEST_LOG")" -ge 2 ] || fail "the health check was not retried"
grep -q '^systemctl --no-pager status darkswap-relay.service' "$DEPLOY_TEST_LOG" ||
  fail "no service status after the failure"
grep -q '^journalctl ' "$DEPLOY_TEST_LOG" || fail "no journal after the failure"
if grep -q '^scp env' "$DEPLOY_TEST_LOG"; then fail "an env file was copied without --env"; fi
[ ! -e "$work/root/etc/darkswap-relay/env" ] || fail "an env file was installed without --env"

echo "deploy.sh: a missing local file stops it before it touches the host"
run_deploy relay.example --binary "$work/nonexistent"
[ "$rc" = 2 ] || fail "exit $rc, expected 2"
grep -q 'nonexistent does not exist' "$work/stderr" || fail "message: $(cat "$work/stderr")"
[ ! -e "$DEPLOY_TEST_LOG" ] || fail "the host was contacted"

echo "deploy.sh: no HOST is a usage error"
run_deploy --binary "$work/darkswap-relay"
[ "$rc" = 2 ] || fail "exit $rc, expected 2"
grep -q 'HOST is missing' "$work/stderr" || fail "message: $(cat "$work/stderr")"

echo "deploy.sh tests passed"
