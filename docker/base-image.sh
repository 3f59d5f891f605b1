#!/usr/bin/env bash
# Build a local stand-in for the official python:3.11-slim image when no image registry is reachable:
# a Debian bookworm root filesystem from debootstrap (using the Debian mirror this host's apt is
# configured with; no host name is written anywhere), Debian's Python 3.11 + pip + venv +
# ca-certificates, laid out like the official image (python, python3, pip, pip3 in /usr/local/bin,
# pip allowed to install system-wide, LANG=C.UTF-8, CMD python3), then `docker import`ed.
#
#   docker/base-image.sh            build BASE_IMAGE unless it exists (idempotent)
#   docker/base-image.sh --force    rebuild it
#
# Environment: BASE_IMAGE (python:3.11-slim), BASE_WORKDIR (a temporary directory), SUITE (bookworm).
# Needs root, debootstrap and a running engine (docker/engine.sh start).
set -euo pipefail

IMAGE=${BASE_IMAGE:-python:3.11-slim}
SUITE=${SUITE:-bookworm}
FORCE=${1:-}

if [ "$FORCE" != --force ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base-image: $IMAGE exists, nothing to do (--force rebuilds it)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 1; }

# The mirror and the suites come from this host's apt configuration (sources.list or deb822 .sources).
mapfile -t TARGETS < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' \
    | awk -v s="$SUITE" '$2 == s || index($2, s "-") == 1' | sort -u)
MIRROR=$(printf '%s\n' "${TARGETS[@]}" | awk -v s="$SUITE" '$2 == s { print $1; exit }')
[ -n "$MIRROR" ] || { echo "base-image: no '$SUITE' suite in this host's apt sources (run apt-get update?)" >&2; exit 1; }

WORK=${BASE_WORKDIR:-$(mktemp -d /var/tmp/base-image.XXXXXX)}
ROOTFS=$WORK/rootfs
cleanup() { rm -rf "$ROOTFS"; [ -n "${BASE_WORKDIR:-}" ] || rmdir "$WORK" 2>/dev/null || true; }
trap cleanup EXIT
rm -rf "$ROOTFS"
began=$SECONDS

echo "base-image: debootstrap $SUITE from the host's configured mirror into $ROOTFS"
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,netbase,tzdata \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
echo "base-image: debootstrap took $((SECONDS - began))s"

# apt inside the image uses the same mirror and suites (updates, security) as this host.
printf '%s\n' "${TARGETS[@]}" | awk '{ printf "deb %s %s %s\n", $1, $2, $3 }' >"$ROOTFS/etc/apt/sources.list"
# Like the official image: python/pip on PATH in /usr/local/bin, pip may install into the system
# Python (Debian's PEP 668 marker removed), no bytecode or apt caches kept.
for name in python python3 pip pip3; do
    target=/usr/bin/$name
    [ "$name" = python ] && target=/usr/bin/python3
    [ "$name" = pip ] && target=/usr/bin/pip3
    ln -sf "$target" "$ROOTFS/usr/local/bin/$name"
done
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/log/*.log
chroot "$ROOTFS" python3 --version

tar -C "$ROOTFS" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "python:3.11-slim stand-in: debootstrap $SUITE + Debian python3" \
    - "$IMAGE" >/dev/null
echo "base-image: imported $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')) in $((SECONDS - began))s"
