#!/usr/bin/env bash
# tools/image-build.sh — builds the chatgate image on a machine that can
# neither pull base images nor run containers, and checks the binary inside.
#
#   tools/image-build.sh                 # release binary (builds it if needed)
#   PROFILE=debug tools/image-build.sh   # the debug binary, quicker to get
#
# 1. a Debian bookworm base made here with debootstrap (minbase), imported
#    with `podman import` as localhost/chatgate-base:bookworm (kept: later
#    runs reuse it);
# 2. the binary and the example login page built on the host (same Debian,
#    so the same glibc) and handed to the Containerfile's build stage
#    (PREBUILT=1: it copies instead of compiling);
# 3. `podman build --isolation chroot --format docker` (no container
#    runtime needed; the docker format keeps the HEALTHCHECK);
# 4. the image mounted (`podman image mount`) and `chatgate check-config`
#    run inside it with chroot, as the image's user.
#
# Not part of .ci/run: the first base takes minutes (debootstrap downloads
# ~40 MB). Needs root (debootstrap, chroot, podman image mount).
set -euo pipefail

cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-release}"
IMAGE="${IMAGE:-localhost/chatgate:latest}"
BASE="${BASE:-localhost/chatgate-base:bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
TARGET="${CARGO_TARGET_DIR:-target}"
started=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - started ))s)"; }

need=()
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  apt-get install -y "${need[@]}" >/dev/null
fi

if ! podman image exists "$BASE"; then
  step "making the base $BASE with debootstrap"
  root=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"
fi

step "building the binaries ($PROFILE)"
flag=(); [ "$PROFILE" = release ] && flag=(--release)
cargo build "${flag[@]}" --locked --bin chatgate --example login_page
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r Containerfile config channels "$context"/   # no .containerignore: it leaves prebuilt/ out
mkdir "$context/prebuilt"
cp "$TARGET/$PROFILE/chatgate" "$TARGET/$PROFILE/examples/login_page" "$context/prebuilt/"

step "podman build --isolation chroot"
podman build --isolation chroot --format docker \
  --build-arg BUILDER="$BASE" --build-arg RUNTIME="$BASE" --build-arg PREBUILT=1 \
  -t "$IMAGE" -f "$context/Containerfile" "$context"

step "checking the image"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$user" = "10001:10001" ] || { echo "runs as ${user:-root}, not 10001:10001"; exit 1; }
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q readyz \
  || { echo "no /readyz health check"; exit 1; }
mnt=$(podman image mount "$IMAGE")
trap 'podman image unmount "$IMAGE" >/dev/null; rm -rf "$context"' EXIT
grep -q '^chatgate:x:10001:10001:' "$mnt/etc/passwd" || { echo "no chatgate user"; exit 1; }
# As the image's user, in the image's root, from its working folder.
chroot --userspec=10001:10001 "$mnt" /bin/sh -c \
  'cd /etc/chatgate && /usr/local/bin/chatgate check-config --config /etc/chatgate/config/chatgate.toml'
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
step "done: $IMAGE, $(( size / 1024 / 1024 )) MB, user 10001, check-config passes inside"
