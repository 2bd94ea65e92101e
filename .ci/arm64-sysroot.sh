#!/bin/sh
# Builds the AArch64 sysroot the cross build links against (cmake/aarch64-linux-gnu.cmake):
# Debian 12's arm64 packages of XNNPACK, pthreadpool, cpuinfo and zlib, extracted into a
# folder. They are not installed through multiarch: libxnnpack-dev:arm64 and
# libpthreadpool-dev:arm64 are not co-installable with the amd64 ones, so the .deb files are
# only downloaded (apt-get download) and unpacked (dpkg-deb -x). Absolute symlinks (e.g.
# usr/lib/aarch64-linux-gnu/libz.so -> /lib/aarch64-linux-gnu/libz.so.1.2.13) are rewritten to
# point inside the folder. The C library itself comes from libc6-dev-arm64-cross
# (/usr/aarch64-linux-gnu), installed by .ci/install-deps.
#   usage: .ci/arm64-sysroot.sh [DIR]      (default: build-arm64-sysroot); run as root.
set -eu
DIR=${1:-build-arm64-sysroot}
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update
fi
PKGS="libxnnpack-dev:arm64 libxnnpack0:arm64 libpthreadpool-dev:arm64 libpthreadpool0:arm64
      libcpuinfo-dev:arm64 libcpuinfo0:arm64 zlib1g-dev:arm64 zlib1g:arm64"
DEBS=$(mktemp -d)
chmod 755 "$DEBS" # apt-get download runs as _apt
trap 'rm -rf "$DEBS"' EXIT
(cd "$DEBS" && apt-get download $PKGS)
rm -rf "$DIR"
mkdir -p "$DIR"
for deb in "$DEBS"/*.deb; do dpkg-deb -x "$deb" "$DIR"; done
# Absolute symlinks -> relative ones inside the sysroot.
ROOT=$(cd "$DIR" && pwd)
find "$ROOT" -type l | while read -r link; do
  target=$(readlink "$link")
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$ROOT$target")" "$link" ;;
  esac
done
echo "arm64 sysroot in $ROOT"
