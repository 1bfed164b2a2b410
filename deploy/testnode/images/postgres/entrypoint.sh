#!/bin/bash
# First start: initdb into $PGDATA, then create the Forlock role and database
# (FORLOCK_DB_USER / FORLOCK_DB_NAME, default forlock, password
# FORLOCK_DB_PASSWORD). POSTGRES_PASSWORD, if set, is the superuser's password
# over TCP; locally the superuser authenticates by peer.
set -euo pipefail

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
shift

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${FORLOCK_DB_PASSWORD:?FORLOCK_DB_PASSWORD must be set}"
  user=${FORLOCK_DB_USER:-forlock} db=${FORLOCK_DB_NAME:-forlock}
  echo "forlock-postgres: initialising $PGDATA" >&2
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  pwopt=()
  [ -n "${POSTGRES_PASSWORD:-}" ] && pwopt=(--pwfile="$pwfile")
  initdb -D "$PGDATA" -U postgres "${pwopt[@]}" --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >&2
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >&2
  psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres --set=user="$user" --set=db="$db" \
    --set=pw="$FORLOCK_DB_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
SQL
  pg_ctl -D "$PGDATA" -m fast -w stop >&2
  echo "forlock-postgres: created role $user and database $db" >&2
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
