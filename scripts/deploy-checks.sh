#!/usr/bin/env bash
# Checks the deployment files without deploying anything: shellcheck on every
# shell script, systemd-analyze verify and security (exposure at most 2.0) on
# the systemd units, the YAML of the compose and Prometheus files and the
# files they mount, then deploy/deploy.sh against stub ssh/scp
# (scripts/deploy-tests.sh). Installs Debian's shellcheck and python3-yaml
# if missing. Takes seconds; needs no Docker and no running systemd.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf -- '--> %s\n' "$*"; }

apt_install() {
  echo "installing Debian's $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

step "shellcheck on every *.sh (tracked, and new files not ignored)"
command -v shellcheck >/dev/null || apt_install shellcheck
mapfile -t scripts < <(git ls-files --cached --others --exclude-standard -- '*.sh')
shellcheck "${scripts[@]}"

step "systemd-analyze verify and security on deploy/*.service"
command -v systemd-analyze >/dev/null || apt_install systemd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in deploy/*.service; do
  # verify checks that ExecStart's binary exists: point it at one that
  # does, in a copy with the same name (the name is part of the check).
  sed -E 's|^ExecStart=/usr/local/bin/[^ ]+|ExecStart=/bin/true|' "$unit" >"$work/${unit##*/}"
  # Warnings (an unknown key, a key in the wrong section) exit 0: fail on
  # any output at all.
  out=$(systemd-analyze verify --man=false "$work/${unit##*/}" 2>&1) || {
    printf '%s\n' "$out"
    exit 1
  }
  if [ -n "$out" ]; then
    printf '%s: systemd-analyze verify warns:\n%s\n' "$unit" "$out"
    exit 1
  fi
  # --threshold is in tenths: 20 = an exposure of 2.0 ("OK").
  if ! out=$(systemd-analyze security --offline=true --threshold=20 --no-pager "$unit" 2>&1); then
    printf '%s\n%s: exposure above 2.0\n' "$out" "$unit"
    exit 1
  fi
  printf '%s\n' "$out" | grep 'Overall exposure'
done

step "YAML of deploy/docker-compose.yml and deploy/prometheus.yml, and the files they name"
if docker compose version >/dev/null 2>&1; then
  docker compose -f deploy/docker-compose.yml config --quiet
fi
python=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
  apt_install python3-yaml
  python=/usr/bin/python3
fi
"$python" - <<'EOF'
import os, sys, yaml

def load(path):
    with open(path) as f:
        return yaml.safe_load(f)

errors = []
compose = load("deploy/docker-compose.yml")
services = compose.get("services", {})
for name in ("relay", "prometheus", "grafana"):
    if name not in services:
        errors.append(f"docker-compose.yml: no service {name}")
# Every bind mount's source must exist, or compose would mount an empty
# directory in its place.
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            path = os.path.normpath(os.path.join("deploy", source))
            if not os.path.exists(path):
                errors.append(f"docker-compose.yml: {name} mounts {path}, which does not exist")
build = services.get("relay", {}).get("build", {})
dockerfile = os.path.join("deploy", build.get("context", "."), build.get("dockerfile", "Dockerfile"))
if not os.path.isfile(os.path.normpath(dockerfile)):
    errors.append(f"docker-compose.yml: relay builds {dockerfile}, which does not exist")

prometheus = load("deploy/prometheus.yml")
if prometheus.get("global", {}).get("scrape_interval") != "15s":
    errors.append("prometheus.yml: scrape_interval is not 15s")
jobs = {job["job_name"]: job for job in prometheus.get("scrape_configs", [])}
for job, port in (("darkswap-relay", "9090"), ("darkswap", "7070")):
    targets = [t for c in jobs.get(job, {}).get("static_configs", []) for t in c["targets"]]
    if not targets or not all(t.endswith(":" + port) for t in targets):
        errors.append(f"prometheus.yml: job {job} does not scrape port {port}")
for rules in prometheus.get("rule_files", []):
    path = os.path.join("deploy", rules)
    if not os.path.isfile(path):
        errors.append(f"prometheus.yml: rule file {path} does not exist")
    else:
        load(path)

for error in errors:
    print(error, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF

step "deploy/deploy.sh against stub ssh and scp"
./scripts/deploy-tests.sh
