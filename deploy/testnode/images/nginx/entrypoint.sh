#!/bin/bash
# Makes a self-signed certificate if /etc/nginx/tls has none (TLS_CN, default
# localhost; TLS_DAYS, default 90) and points nginx at API_UPSTREAM (default
# api:8080).
set -euo pipefail
tls=/etc/nginx/tls
if [ ! -s "$tls/cert.pem" ] || [ ! -s "$tls/key.pem" ]; then
  cn=${TLS_CN:-localhost} days=${TLS_DAYS:-90}
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$tls/key.pem" -out "$tls/cert.pem" -days "$days" -subj "/CN=$cn" \
    -addext "subjectAltName=DNS:$cn,DNS:localhost,IP:127.0.0.1" 2>/dev/null
  chmod 0600 "$tls/key.pem"
  echo "forlock-nginx: generated a self-signed ECDSA P-256 certificate for $cn, valid $days days" >&2
fi
printf 'set $api_upstream http://%s;\n' "${API_UPSTREAM:-api:8080}" >/etc/nginx/forlock-upstream.conf
exec "$@"
