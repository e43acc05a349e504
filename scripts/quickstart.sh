#!/usr/bin/env bash
# Set up, build, and run the main job: encode a clip to tokens with the shipped default model and decode it back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/install_python.sh  # the Python package: import wavtok
mkdir -p out
# The bundled clip is made on the spot by espeak-ng (no audio is stored in the repository); any file works.
espeak-ng -v en-us -s 150 -w out/sample.wav "The quick brown fox jumps over the lazy dog. Neural codecs turn speech into tokens."
build/wavtok info
build/wavtok encode out/sample.wav -o out/sample.wtt
build/wavtok decode out/sample.wtt -o out/sample.decoded.wav
build/wavtok encode out/sample.wav -o out/sample.tokens.txt --format txt
echo "tokens: out/sample.wtt (also out/sample.tokens.txt); audio: out/sample.decoded.wav"
