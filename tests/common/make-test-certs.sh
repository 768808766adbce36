#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Make throw-away X.509 credentials for the TLS tests, at test time (no key
# is ever committed). Each directory is laid out as rmig's tls_creds (and
# QEMU's tls-creds-x509): ca-cert.pem, server-cert.pem, server-key.pem (the
# destination's), client-cert.pem, client-key.pem (the source's).
#
#   make-test-certs.sh OUTDIR
#
#   OUTDIR/good       one CA; server certificate for 127.0.0.1, ::1, localhost
#   OUTDIR/expired    as good, but the client certificate expired in 2020
#   OUTDIR/otherca    as good, but the client certificate is from another CA
#   OUTDIR/wronghost  as good, but the server certificate names only
#                     wrong.example.invalid
#
# An expired certificate: `openssl x509 -req -days` cannot go below 0 and
# OpenSSL 3.0 has no -not_before/-not_after (3.4 does), so it is signed by
# `openssl ca` with explicit -startdate/-enddate in the past.
set -euo pipefail

out=${1:?usage: make-test-certs.sh OUTDIR}
mkdir -p "$out"
w=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$w"' EXIT
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME: a self-signed CA certificate $w/NAME-cert.pem with key $w/NAME-key.pem
ca() {
	key "$w/$1-key.pem"
	openssl req -x509 -new -key "$w/$1-key.pem" -out "$w/$1-cert.pem" -days 30 \
		-subj "/CN=rmig test $1" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf NAME CA SAN EKU: $w/NAME-cert.pem signed by CA, key $w/NAME-key.pem
leaf() {
	local name=$1 ca=$2 san=$3 eku=$4
	key "$w/$name-key.pem"
	openssl req -new -key "$w/$name-key.pem" -out "$w/$name.csr" -subj "/CN=rmig test $name" \
		2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$san" "$eku" \
		>"$w/$name.ext"
	openssl x509 -req -in "$w/$name.csr" -CA "$w/$ca-cert.pem" -CAkey "$w/$ca-key.pem" \
		-set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$w/$name.ext" \
		-out "$w/$name-cert.pem" 2>/dev/null
}

# expired NAME CA EKU: as leaf, valid only during 2020
expired() {
	local name=$1 ca=$2 eku=$3
	key "$w/$name-key.pem"
	openssl req -new -key "$w/$name-key.pem" -out "$w/$name.csr" -subj "/CN=rmig test $name" \
		2>/dev/null
	mkdir -p "$w/ca-db"
	: >"$w/ca-db/index.txt"
	openssl rand -hex 8 >"$w/ca-db/serial"
	cat >"$w/ca.cnf" <<-EOF
		[ca]
		default_ca = test_ca
		[test_ca]
		database = $w/ca-db/index.txt
		serial = $w/ca-db/serial
		new_certs_dir = $w/ca-db
		default_md = sha256
		policy = any
		unique_subject = no
		x509_extensions = leaf_ext
		[any]
		commonName = supplied
		[leaf_ext]
		basicConstraints = CA:FALSE
		extendedKeyUsage = $eku
	EOF
	openssl ca -batch -config "$w/ca.cnf" -cert "$w/$ca-cert.pem" -keyfile "$w/$ca-key.pem" \
		-startdate 20200101000000Z -enddate 20200201000000Z -notext \
		-in "$w/$name.csr" -out "$w/$name-cert.pem" 2>/dev/null
}

good_san="IP:127.0.0.1,IP:::1,DNS:localhost"
ca main
ca other
leaf server main "$good_san" serverAuth
leaf client main "DNS:rmig-source" clientAuth
leaf client-other other "DNS:rmig-source" clientAuth
leaf server-wrong main "DNS:wrong.example.invalid" serverAuth
expired client-expired main clientAuth

# set DIR SERVER CLIENT: one credentials directory
set_dir() {
	local d=$out/$1
	mkdir -p "$d"
	cp "$w/main-cert.pem" "$d/ca-cert.pem"
	cp "$w/$2-cert.pem" "$d/server-cert.pem"
	cp "$w/$2-key.pem" "$d/server-key.pem"
	cp "$w/$3-cert.pem" "$d/client-cert.pem"
	cp "$w/$3-key.pem" "$d/client-key.pem"
}
set_dir good server client
set_dir expired server client-expired
set_dir otherca server client-other
set_dir wronghost server-wrong client

# the expired one really is, and the good ones really verify
openssl verify -CAfile "$out/good/ca-cert.pem" "$out/good/server-cert.pem" \
	"$out/good/client-cert.pem" >/dev/null
if openssl x509 -checkend 0 -noout -in "$out/expired/client-cert.pem" >/dev/null; then
	echo "make-test-certs: the expired certificate is not expired" >&2
	exit 1
fi
echo "make-test-certs: credentials in $out (good, expired, otherca, wronghost)"
