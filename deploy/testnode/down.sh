#!/usr/bin/env bash
# down.sh [NAME] [--keep-data]: stops and removes a test node's containers and
# network, and its volumes (database, Redis data, TLS certificate) unless
# --keep-data.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=forlock keep=0
for a in "$@"; do
  case $a in
    --keep-data) keep=1 ;;
    -*) echo "down.sh: unknown flag $a" >&2; exit 2 ;;
    *) name=$a ;;
  esac
done
export NODE_NAME=$name
args=(--remove-orphans)
[ "$keep" = 1 ] || args+=(--volumes)
docker-compose -p "$name" -f "$here/docker-compose.yml" down "${args[@]}" >&2
