#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cc) with clang + ASan + UBSan and runs each for a bounded time.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Environment: WAVTOK_FUZZ_BUILD  build folder (default build-fuzz; an existing WAVTOK_FUZZ=ON build is reused as is)
#              JOBS               build parallelism (default 1)
#              FUZZ_FLAGS         extra libFuzzer flags (e.g. "-jobs=2 -workers=2")
#              FUZZ_NO_BUILD=1    run what is built, without building
# Seeds are generated from ../shared/fixtures into $BUILD/fuzz/seeds (python/fuzz_seeds.py); inputs the fuzzer
# finds accumulate in $BUILD/fuzz/corpus/<target> across runs; crashes land in $BUILD/fuzz/crashes/. Prints one
# line per target (executions, rate, corpus size, result) and exits non-zero if any target found a problem.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_TARGET=${1:-60}
shift || true
BUILD=${WAVTOK_FUZZ_BUILD:-build-fuzz}
JOBS=${JOBS:-1}
# Every libFuzzer target in tests/fuzz/.
mapfile -t ALL_TARGETS < <(cd tests/fuzz && ls ./*_fuzz.cc | sed "s|^./||; s|\.cc$||")
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  if ! grep -q '^WAVTOK_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    # GNU OpenMP, as oneDNN uses it (see scripts/sanitize.sh).
    GOMP=$(g++ -print-file-name=libgomp.so)
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
      -DCMAKE_CXX_COMPILER=clang++-14 -DWAVTOK_SANITIZE=ON -DWAVTOK_FUZZ=ON -DWAVTOK_BUILD_TESTS=OFF \
      -DWAVTOK_BUILD_BENCH=OFF -DOpenMP_CXX_FLAGS=-fopenmp=libgomp -DOpenMP_C_FLAGS=-fopenmp=libgomp \
      -DOpenMP_CXX_LIB_NAMES=gomp -DOpenMP_C_LIB_NAMES=gomp -DOpenMP_gomp_LIBRARY="$GOMP" >/dev/null
  fi
  cmake --build "$BUILD" -j"$JOBS" --target wavtok_cli "${TARGETS[@]}"
fi

FUZZ=$ROOT/$BUILD/fuzz
mkdir -p "$FUZZ/crashes" "$FUZZ/logs"
if [ ! -f "$FUZZ/seeds/.done" ]; then
  rm -rf "$FUZZ/seeds"
  ASAN_OPTIONS=detect_leaks=0 /usr/bin/python3 python/fuzz_seeds.py "$FUZZ/seeds" "$BUILD/wavtok"
  touch "$FUZZ/seeds/.done"
fi

# Scratch files of the targets go to a private tmpfs folder, removed at the end.
export WAVTOK_FUZZ_TMP
WAVTOK_FUZZ_TMP=$(mktemp -d "${TMPDIR:-/dev/shm}/wavtok-fuzz.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$WAVTOK_FUZZ_TMP"' EXIT
export OMP_NUM_THREADS=1
# Abort on the first UBSan report too, so it is saved as a crash artifact.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=1
# Known leaks inside third-party libraries (each explained in the file) are not ours to fix.
export LSAN_OPTIONS=${LSAN_OPTIONS:-}:suppressions=$ROOT/scripts/lsan.supp

failed=0
printf '%-24s %12s %10s %8s  %s\n' target executions execs/s corpus result
for t in "${TARGETS[@]}"; do
  corpus=$FUZZ/corpus/$t
  mkdir -p "$corpus"
  log=$FUZZ/logs/$t.log
  set +e
  # -rss_limit_mb/-malloc_limit_mb: a single input may not make the process use more than 2 GiB.
  # -timeout: a single input may not take more than 30 s (the slowest seed takes well under a second).
  # shellcheck disable=SC2086
  "$BUILD/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$FUZZ/crashes/$t-" ${FUZZ_FLAGS:-} "$corpus" "$FUZZ/seeds/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    failed=1
    artifact=$(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/Test unit written to //')
    result="FAILED (exit $rc): $(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$log" || true)"
    [ -n "$artifact" ] && result="$result; input: $artifact (reproduce: $BUILD/$t $artifact)"
  fi
  printf '%-24s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$size" "$result"
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: some targets failed; logs in $FUZZ/logs" >&2
  exit 1
fi
