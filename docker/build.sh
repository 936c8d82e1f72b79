#!/usr/bin/env bash
# Build the golem image (every role in one image) without a container registry.
#
#   docker/build.sh [--tag NAME:TAG] [--force-base] [--no-host-ca]
#
# 1. docker/base/build.sh makes golem-base:bookworm with debootstrap + docker import (skipped when
#    it exists; --force-base rebuilds it).
# 2. The build context is streamed to `docker build` as a tar holding only what the image needs:
#    pyproject.toml, README.md, the six packages, docker/entrypoint.py, the anvil binary (from
#    $GOLEM_ANVIL, the repo's .tools/ that scripts/setup fills, or anvil on PATH) and the host's
#    local CA certificates (/usr/local/share/ca-certificates; --no-host-ca leaves them out).
# pip inside the build fetches the Python dependencies from PyPI (or the index pip is configured for).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=golem:latest
BASE_ARGS=()
HOST_CA=1
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG=$2; shift ;;
        --force-base) BASE_ARGS+=(--force) ;;
        --no-host-ca) HOST_CA=0 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

docker/base/build.sh "${BASE_ARGS[@]}"

ANVIL=${GOLEM_ANVIL:-}
if [ -z "$ANVIL" ]; then
    if [ -x .tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ]; then
        ANVIL=.tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
    else
        ANVIL=$(command -v anvil || true)
    fi
fi
if [ -z "$ANVIL" ] || [ ! -x "$ANVIL" ]; then
    echo "build.sh: anvil not found; run scripts/setup (npm @foundry-rs/anvil under .tools/) or set GOLEM_ANVIL" >&2
    exit 1
fi
ANVIL=$(readlink -f "$ANVIL")

# Extra context beside the sources: anvil, and the host's locally added CA certificates, so that
# pip in the build (and TLS from the daemons) works through a TLS-intercepting proxy the way it does
# on this host. --no-host-ca leaves them out.
EXTRA=$(mktemp -d)
trap 'rm -rf "$EXTRA"' EXIT
cp "$ANVIL" "$EXTRA/anvil"
mkdir "$EXTRA/ca"
if [ "$HOST_CA" -eq 1 ] && [ -d /usr/local/share/ca-certificates ]; then
    find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$EXTRA/ca/" \;
fi

echo "build.sh: building $TAG (the first build installs the Python dependencies: a few minutes)"
tar -c --exclude=__pycache__ --exclude='*.pyc' \
        pyproject.toml README.md market exeunits payments provider requestor blueprints \
        docker/Dockerfile docker/entrypoint.py -C "$EXTRA" anvil ca \
    | docker build -f docker/Dockerfile -t "$TAG" -
docker image inspect --format "build.sh: $TAG is {{.Id}}, {{.Size}} bytes" "$TAG"
