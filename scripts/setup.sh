#!/usr/bin/env bash
# Install every Debian package relorac needs to build, test and run its demo.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build flex bison check
  llvm-dev clang libclang-rt-dev libblis-serial-dev libopenblas-dev bible-kjv gnuplot-nox
  openmpi-bin libopenmpi-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 2
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
