#!/bin/sh
# Makes throwaway TLS material for tests and demos: a CA and, per name, a certificate valid
# for both server and client use on loopback (SAN IP:127.0.0.1, IP:::1, DNS:localhost).
#
#   scripts/certs.sh DIR [name...]
#
# DIR/ca.pem, DIR/ca-key.pem: the CA (reused when it already exists, so later calls can add
# names signed by the same CA). For each name: DIR/NAME.pem, DIR/NAME-key.pem (CN=NAME).
# EC P-256 keys, 10 days validity. Needs the openssl CLI.
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 DIR [name...]" >&2
    exit 2
fi
dir=$1; shift
mkdir -p "$dir"
cd "$dir"
umask 077

if [ ! -f ca.pem ] || [ ! -f ca-key.pem ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout ca-key.pem -out ca.pem -days 10 -subj "/CN=plinth-test-ca-$$" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

ext=$(mktemp)
trap 'rm -f "$ext"' EXIT
cat >"$ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT

for name in "$@"; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$name-key.pem" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -out "$name.pem" -days 10 -extfile "$ext" 2>/dev/null
    rm -f "$name.csr"
done
rm -f ca.srl
chmod 644 ca.pem; for name in "$@"; do chmod 644 "$name.pem"; done
