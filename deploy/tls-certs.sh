#!/usr/bin/env bash
# Throwaway TLS certificates for tests and local development. See --help.
set -euo pipefail

QTASKS_LOG_TAG=tls-certs
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DIR=${QTASKS_TLS_DIR:-$QTASKS_RUN_DIR/tls}

usage() {
    cat <<EOF2
Usage: deploy/tls-certs.sh [generate|path|clean]

Generates with openssl, under $DIR (QTASKS_TLS_DIR), a throwaway CA and
certificates signed by it. FOR TESTS ONLY: the CA key lies next to them.

  ca.pem                     the test CA (give it to clients: --tls-ca)
  server.pem  server.key     broker certificate for localhost and 127.0.0.1
  client.pem  client.key     client certificate, CN=qtasks-client (mutual TLS,
                             and the user name of SASL EXTERNAL)
  expired.pem expired.key    broker certificate for localhost, expired in 2020
  wronghost.pem wronghost.key broker certificate for wrong.example only
  other-ca.pem               an unrelated CA
  untrusted-client.pem .key  a client certificate signed by the unrelated CA

  generate  (default) create what is missing; idempotent. Everything is
            regenerated when server.pem expires within a day.
  path      print the directory
  clean     delete the directory
EOF2
}

cmd=${1:-generate}
case $cmd in
    -h|--help|help) usage; exit 0 ;;
    path) echo "$DIR"; exit 0 ;;
    clean) rm -rf "$DIR"; log "removed $DIR"; exit 0 ;;
    generate) ;;
    *) usage >&2; exit 2 ;;
esac
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"

files=(ca.pem server.pem server.key client.pem client.key expired.pem expired.key wronghost.pem wronghost.key other-ca.pem
    untrusted-client.pem untrusted-client.key)
complete=1
for f in "${files[@]}"; do [[ -s $DIR/$f ]] || complete=0; done
if (( complete )) && openssl x509 -checkend 86400 -noout -in "$DIR/server.pem" >/dev/null 2>&1; then
    log "certificates present in $DIR"
    exit 0
fi

# Built in a temporary directory and moved in place, so that a concurrent or
# interrupted run never leaves a half-written set.
mkdir -p "$(dirname "$DIR")"
work=$(mktemp -d "$(dirname "$DIR")/.tls-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

quiet() { "$@" >/dev/null 2>&1 || { "$@" || true; die "openssl failed: $*"; }; }

# ECDSA P-256: fast to generate on a loaded machine, accepted by RabbitMQ
# (Erlang/OTP) and OpenSSL 3.
newkey() { quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

newkey ca.key
quiet openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=qtasks test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
newkey other-ca.key
quiet openssl req -x509 -new -key other-ca.key -sha256 -days 30 -subj "/CN=unrelated test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out other-ca.pem

# `openssl ca` rather than `x509 -req`: only it sets an explicit validity
# window in OpenSSL 3.0, which the expired certificate needs.
mkdir -p db
: > db/index.txt
echo 1000 > db/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test_ca
[test_ca]
dir = .
database = ./db/index.txt
serial = ./db/serial
new_certs_dir = ./db
certificate = ./ca.pem
private_key = ./ca.key
default_md = sha256
default_days = 30
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${ENV::SAN}
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
CNF

# sign NAME CN EXTENSIONS SAN [ca validity options...]
sign() {
    local name=$1 cn=$2 ext=$3 san=$4
    shift 4
    newkey "$name.key"
    quiet openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
    SAN=$san quiet openssl ca -batch -config ca.cnf -extensions "$ext" -notext -in "$name.csr" -out "$name.pem" "$@"
}
# rabbitmq-c 0.11 checks the host name against DNS names only (not IP
# addresses), so 127.0.0.1 is listed as a DNS name as well as an IP.
sign server localhost server "DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1" -days 30
sign client qtasks-client client "DNS:qtasks-client" -days 30
sign expired localhost server "DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1" \
    -startdate 20200101000000Z -enddate 20200102000000Z
sign wronghost wrong.example server "DNS:wrong.example"
# A client certificate the broker must refuse: signed by the unrelated CA.
sed -e 's|^certificate = ./ca.pem|certificate = ./other-ca.pem|' -e 's|^private_key = ./ca.key|private_key = ./other-ca.key|' \
    ca.cnf > other-ca.cnf
newkey untrusted-client.key
quiet openssl req -new -key untrusted-client.key -subj "/CN=qtasks-client" -out untrusted-client.csr
SAN=DNS:qtasks-client quiet openssl ca -batch -config other-ca.cnf -extensions client -notext \
    -in untrusted-client.csr -out untrusted-client.pem -days 30

# Keys readable by the owner only; the broker gets its own copy
# (deploy/rabbitmq.sh copies them for user rabbitmq).
chmod 600 ./*.key
chmod 644 ./*.pem
mkdir -p "$DIR"
for f in "${files[@]}" ca.key; do mv -f "$f" "$DIR/$f"; done
log "generated test CA and certificates in $DIR"
