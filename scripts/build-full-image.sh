#!/usr/bin/env bash
# Builds the full sandbox image offline from Debian packages (no registry): debootstrap a
# bookworm root with sh and bash, coreutils, git, curl, python3, nodejs and npm, add the
# unprivileged user's mount points, and `docker import` it as ae-sandbox:full.
#
#   bash scripts/build-full-image.sh [TAG]      # default ae-sandbox:full
#
# Use it with AE_SANDBOX_IMAGE=ae-sandbox:full (or allow it per request with AE_ALLOWED_IMAGES
# and the input field `image`). Takes a few minutes and about 600 MB of disk.
set -euo pipefail
tag="${1:-ae-sandbox:full}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
command -v debootstrap >/dev/null || bash "$(dirname "$0")/install-deps.sh"
root="$(mktemp -d /tmp/ae-full-root.XXXXXX)"
cleanup() { umount "$root/proc" 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT
# A minimal base first; the tools are then installed by apt inside it (debootstrap's own
# --include cannot order npm's large dependency tree).
debootstrap --variant=minbase bookworm "$root" "$mirror"
cp /etc/resolv.conf "$root/etc/resolv.conf"
echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"
mount -t proc proc "$root/proc"
chroot "$root" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bash coreutils git curl ca-certificates python3 nodejs npm procps >/dev/null'
umount "$root/proc"
: > "$root/etc/resolv.conf"
mkdir -p "$root/workspace" "$root/tmp"
chmod 1777 "$root/tmp"
chown 65534:65534 "$root/workspace"
# Nothing of the build host's apt state or caches goes into the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  -c 'USER 65534:65534' \
  -c 'WORKDIR /workspace' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV HOME=/workspace' \
  -c 'LABEL ae.image=full' \
  - "$tag"
docker run --rm --network none "$tag" sh -c 'bash --version | head -1; git --version; curl --version | head -1; python3 --version; node --version; npm --version'
echo "built $tag"
