#!/usr/bin/env bash
# The whole test suite (what CI runs): setup, the Release build and every test through CTest, then the hardening
# checks of scripts/sanitize.sh: the tests again under ASan+UBSan, a short fuzz run of every parser, and
# ThreadSanitizer over the concurrent tests. WAVTOK_SKIP_SANITIZE=1 stops after the Release tests.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 1200)
echo "test: Release build and tests passed ($((SECONDS - t0)) s)"
if [ "${WAVTOK_SKIP_SANITIZE:-0}" != 1 ]; then
  bash scripts/sanitize.sh
fi
echo "test: all passed ($((SECONDS - t0)) s)"
