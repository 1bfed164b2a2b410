#!/usr/bin/env bash
# push-images.sh ENDPOINT: pushes the stand-in API (forlock-test/api:latest,
# from deploy/testnode/build-images.sh) to the test registry at ENDPOINT
# (host:port, from start.sh) in three releases:
#   ENDPOINT/forlock/api:v1   FORLOCK_API_VERSION=v1 (also tagged :latest)
#   ENDPOINT/forlock/api:v2   FORLOCK_API_VERSION=v2
#   ENDPOINT/forlock/api:v3   FORLOCK_API_VERSION=v3, FORLOCK_API_BROKEN=1:
#                             every health endpoint answers 503, so the
#                             image's Docker healthcheck fails
# Each is a rebuild of the same image that adds no layer (ENV and LABEL), so
# no network and seconds per image. Prints one line per tag: REF DIGEST.
# Logs in with FORLOCK_REGISTRY_USER / FORLOCK_REGISTRY_PASSWORD (start.sh's
# test defaults) through a temporary DOCKER_CONFIG, so the credentials are
# neither on a command line nor left in ~/.docker; FORLOCK_REGISTRY_AUTH=0
# skips the login. SOURCE_IMAGE picks another source image.
set -euo pipefail
log() { echo "registry/push-images: $*" >&2; }
[ $# -eq 1 ] || { echo "usage: $0 ENDPOINT" >&2; exit 2; }
endpoint=$1
src=${SOURCE_IMAGE:-forlock-test/api:latest}
repo=$endpoint/forlock/api
export DOCKER_BUILDKIT=0 # the classic builder needs no network

docker image inspect "$src" >/dev/null 2>&1 ||
  { log "$src is missing: run deploy/testnode/build-images.sh first"; exit 1; }

DOCKER_CONFIG=$(mktemp -d)
export DOCKER_CONFIG
out=$DOCKER_CONFIG/out
trap 'rm -rf "$DOCKER_CONFIG"' EXIT
# quiet CMD...: runs CMD, showing its output only when it fails.
quiet() { "$@" >"$out" 2>&1 || { cat "$out" >&2; log "failed: $*"; exit 1; }; }
if [ "${FORLOCK_REGISTRY_AUTH:-1}" != 0 ]; then
  printf '%s' "${FORLOCK_REGISTRY_PASSWORD:-forlock-test-secret}" |
    quiet docker login --username "${FORLOCK_REGISTRY_USER:-forlock-test}" --password-stdin "$endpoint"
fi

t0=$SECONDS
for v in v1 v2 v3; do
  broken=""
  [ "$v" = v3 ] && broken=" FORLOCK_API_BROKEN=1"
  printf 'FROM %s\nENV FORLOCK_API_VERSION=%s%s\nLABEL org.forlock.test.release=%s\n' "$src" "$v" "$broken" "$v" |
    quiet docker build -q -t "$repo:$v" -
  # The first push uploads the base layers (about 450 MB); the others
  # only their configuration.
  quiet docker push -q "$repo:$v"
done
quiet docker tag "$repo:v1" "$repo:latest"
quiet docker push -q "$repo:latest"
for v in v1 v2 v3 latest; do
  digest=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$repo:$v" | grep -m1 "^$repo@" | cut -d@ -f2)
  echo "$repo:$v $digest"
done
log "pushed $repo:{v1,v2,v3,latest} from $src in $((SECONDS - t0))s"
