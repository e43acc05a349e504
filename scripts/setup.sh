#!/usr/bin/env bash
# Installs everything wavtok needs on Debian 12 (build, tests, reference model, training, reports).
# Idempotent; run as root (or with sudo available).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libsndfile1-dev libsoxr-dev libkissfft-dev libdnnl-dev libyaml-cpp-dev libzip-dev libcli11-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libeigen3-dev
  python3 python3-torch python3-numpy python3-yaml python3-scipy python3-matplotlib libopenblas0 wamerican
  python3-dev python3-pip python3-pybind11 pybind11-dev python3-pytest python3-distributed
  espeak-ng fluidsynth fluid-soundfont-gm sox libsox-fmt-base codec2 opus-tools
  klettres-data festival festvox-kallpc16k festvox-kdlpc16k festvox-italp16k festvox-itapc16k festvox-ru
  festvox-suopuhe-lj festvox-suopuhe-mv
  clang libclang-rt-14-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
echo "setup: all packages present"
