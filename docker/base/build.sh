#!/usr/bin/env bash
# Build the base image golem-base:bookworm without a container registry: debootstrap a minimal
# Debian bookworm root filesystem from a Debian package mirror, then `docker import` it.
#
#   docker/base/build.sh [--force] [--tag NAME:TAG] [--mirror URL]
#
# Idempotent: if the tag already exists the script says so and exits 0 (--force rebuilds it).
# Needs root (debootstrap creates device nodes and chroots), `debootstrap` (installed with apt-get
# when missing and we are root) and a running Docker engine. Only the Debian mirror is contacted.
set -euo pipefail

TAG=golem-base:bookworm
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
FORCE=0
# python3 + venv run the project; ca-certificates lets pip and the ERC-20 driver speak TLS.
PACKAGES=python3,python3-venv,ca-certificates

while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1 ;;
        --tag) TAG=$2; shift ;;
        --mirror) MIRROR=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "base/build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$FORCE" -eq 0 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base/build.sh: $TAG exists (use --force to rebuild)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "base/build.sh: debootstrap needs root; run it with sudo" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "base/build.sh: installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

ROOTFS=$(mktemp -d "${TMPDIR:-/var/tmp}/golem-base.XXXXXX")
cleanup() {
    # /proc or /sys can be left mounted in the chroot by an interrupted debootstrap.
    for mounted in proc sys dev/pts; do
        umount "$ROOTFS/$mounted" 2>/dev/null || true
    done
    rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

echo "base/build.sh: debootstrap $SUITE from $MIRROR (a few minutes)"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
        >"$ROOTFS.log" 2>&1; then
    tail -n 30 "$ROOTFS.log" >&2
    echo "base/build.sh: debootstrap failed; the whole log is $ROOTFS.log" >&2
    exit 1
fi
rm -f "$ROOTFS.log"

# What a container never needs: package caches and lists (apt-get update restores the lists).
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/*
# A clean image has no host name or resolver of its own: Docker provides both at run time.
: >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/resolv.conf"

echo "base/build.sh: importing as $TAG"
tar --numeric-owner --xattrs -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE" \
    - "$TAG" >/dev/null
docker image inspect --format "base/build.sh: $TAG is {{.Id}}, {{.Size}} bytes" "$TAG"
