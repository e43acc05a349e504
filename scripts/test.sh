#!/usr/bin/env bash
# The whole test suite (what CI runs): setup, the Release build and every test through CTest, then the hardening
# checks of scripts/sanitize.sh: the tests again under ASan+UBSan, a short fuzz run of every parser, and
# ThreadSanitizer over the concurrent tests. WAVTOK_SKIP_SANITIZE=1 stops after the Release tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# OpenMP threads that wait for work sleep instead of spinning: CTest runs tests in parallel (-j nproc) and each test
# uses every core through oneDNN, so spinning waiters burn the cores the other tests need (measured on the 2-core
# machine while other jobs loaded it: `ctest -j2 -R CausalModel` took 411 s wall / 168 s CPU with the default
# policy, 52 s / 19 s passive; with `-R 'PtqSeanet|CausalModel|EncodecStreaming'` 685 s / 287 s against 72 s / 30 s).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
t0=$SECONDS
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 1200)
echo "test: Release build and tests passed ($((SECONDS - t0)) s)"
if [ "${WAVTOK_SKIP_SANITIZE:-0}" != 1 ]; then
  bash scripts/sanitize.sh
fi
echo "test: all passed ($((SECONDS - t0)) s)"
