#!/usr/bin/env bash
# A private certificate authority and a TLS certificate for darkswap-relay,
# made with openssl, for tests and private deployments (a public relay uses a
# certificate from a public CA, e.g. Let's Encrypt):
#
#   deploy/generate-certs.sh DIR [--hosts "localhost 127.0.0.1 relay.example"] [--days N]
#
# writes into DIR (created if missing):
#   ca.pem, ca-key.pem          the CA (P-256, 10 years); kept if DIR has them
#                               already, so one CA can sign several certificates
#   relay.pem, relay-key.pem    the relay's certificate (P-256) signed by the CA,
#                               its subjectAltName one entry per host (IP
#                               addresses as iPAddress, names as dNSName), and
#                               its key (PKCS#8, mode 0600)
#
# --hosts   names and addresses the certificate is valid for, separated by
#           spaces (default: "localhost 127.0.0.1 ::1"); the first is also its
#           common name
# --days N  validity of the relay certificate (default 365). Zero or less
#           makes one that expired 1-N days ago (valid for the day before
#           that), for tests of clients refusing an expired certificate.
#
# Then: [tls] cert_file = "DIR/relay.pem", key_file = "DIR/relay-key.pem" in
# the relay's config, and clients trust DIR/ca.pem (see docs/operations.md,
# TLS). Prints the two paths and the SHA-256 of each certificate's public key
# (base64, what Chromium's --ignore-certificate-errors-spki-list takes).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "generate-certs.sh: $*" >&2
  exit 1
}

dir=""
hosts="localhost 127.0.0.1 ::1"
days=365
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts)
      [ $# -ge 2 ] || usage
      hosts="$2"
      shift 2
      ;;
    --days)
      [ $# -ge 2 ] || usage
      days="$2"
      shift 2
      ;;
    -h | --help) usage ;;
    -*) die "unknown option $1" ;;
    *)
      [ -z "$dir" ] || usage
      dir="$1"
      shift
      ;;
  esac
done
[ -n "$dir" ] || usage
[[ "$days" =~ ^-?[0-9]+$ ]] || die "--days takes a whole number of days, not '$days'"
command -v openssl >/dev/null || die "openssl is needed"

# One subjectAltName entry per host.
san=""
for host in $hosts; do
  if [[ "$host" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || "$host" == *:* ]]; then
    entry="IP:$host"
  elif [[ "$host" =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    entry="DNS:$host"
  else
    die "'$host' is neither an IP address nor a DNS name"
  fi
  san="${san:+$san,}$entry"
done
[ -n "$san" ] || die "--hosts names no host"
read -r common_name _ <<<"$hosts"

mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

# The CA, unless DIR has one.
if [ -f "$dir/ca.pem" ] && [ -f "$dir/ca-key.pem" ]; then
  echo "using the CA in $dir/ca.pem" >&2
else
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca-key.pem" 2>/dev/null
  openssl req -new -x509 -sha256 -days 3650 -key "$dir/ca-key.pem" -out "$dir/ca.pem" \
    -subj "/O=DarkSwap private CA/CN=DarkSwap relay CA $(date -u +%Y%m%d%H%M%S)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"
  chmod 0644 "$dir/ca.pem"
fi

# The relay's key and request.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/relay-key.pem" 2>/dev/null
openssl req -new -sha256 -key "$work/relay-key.pem" -out "$work/relay.csr" \
  -subj "/O=DarkSwap relay/CN=$common_name"

# Its validity, as `openssl ca` takes it (it can date a certificate in the
# past, which `openssl x509 -days` cannot).
now="$(date -u +%s)"
if [ "$days" -gt 0 ]; then
  start=$((now - 300))
  end=$((now + days * 86400))
else
  end=$((now + days * 86400 - 86400))
  start=$((end - 86400))
fi
stamp() { date -u -d "@$1" +%Y%m%d%H%M%SZ; }

cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = local
[local]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
unique_subject = no
email_in_dn = no
copy_extensions = none
[any]
organizationName = optional
commonName = supplied
[relay]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
EOF
: >"$work/index.txt"
openssl rand -hex 16 >"$work/serial"
openssl ca -batch -notext -config "$work/ca.cnf" -extensions relay \
  -cert "$dir/ca.pem" -keyfile "$dir/ca-key.pem" \
  -startdate "$(stamp "$start")" -enddate "$(stamp "$end")" \
  -in "$work/relay.csr" -out "$work/relay.pem" 2>"$work/ca.log" ||
  die "openssl ca failed: $(cat "$work/ca.log")"

mv "$work/relay-key.pem" "$dir/relay-key.pem"
mv "$work/relay.pem" "$dir/relay.pem"
chmod 0600 "$dir/relay-key.pem" "$dir/ca-key.pem"
chmod 0644 "$dir/relay.pem"

spki() {
  openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | openssl base64 -A
}
echo "cert_file = \"$dir/relay.pem\""
echo "key_file = \"$dir/relay-key.pem\""
echo "ca: $dir/ca.pem (spki sha256 $(spki "$dir/ca.pem"))"
echo "relay: $san, $(openssl x509 -in "$dir/relay.pem" -noout -enddate) (spki sha256 $(spki "$dir/relay.pem"))"
