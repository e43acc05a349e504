#!/usr/bin/env bash
# Hardening checks (issue 7), run by scripts/test.sh after the normal build and tests:
#   1. ASan + UBSan: a clang build in build-asan (WAVTOK_SANITIZE=ON, WAVTOK_FUZZ=ON) and the whole test suite there;
#   2. a short libFuzzer run of every *_fuzz.cc target, from the same build (scripts/fuzz.sh);
#   3. ThreadSanitizer over the concurrent tests (codec_tests and integration_tests, --gtest_filter='*Concurrent*') in
#      build-tsan, when such tests exist.
#
#   bash scripts/sanitize.sh [asan|fuzz|tsan ...]        (default: all three)
#
# Environment: FUZZ_SECONDS  seconds per fuzz target (default 20)
#              JOBS          build parallelism (default: nproc)
# Tests excluded under ASan/UBSan (they still run in the normal build), with the reason:
#   Streaming.AnyChunkSizeGivesTheSameTokens - the same streaming encode repeated for many chunk sizes: no code path
#       that Streaming.DefaultPresetMatchesOneShot does not cover, and ~8 min under ASan on 2 cores;
#   Streaming.SessionMemoryDoesNotGrowWithStreamLength - measures the process's memory growth, which ASan's
#       quarantine and shadow memory distort; ~6 min under ASan.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(asan fuzz tsan)

# clang with GNU OpenMP: oneDNN (Debian's libdnnl) runs on libgomp, so the engine's omp_* calls must reach the same
# runtime; LLVM's libomp would be a second, separate thread pool. The engine itself has no OpenMP pragmas.
GOMP=$(g++ -print-file-name=libgomp.so)
CLANG_ARGS=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DWAVTOK_BUILD_BENCH=OFF
  -DOpenMP_CXX_FLAGS=-fopenmp=libgomp -DOpenMP_C_FLAGS=-fopenmp=libgomp -DOpenMP_CXX_LIB_NAMES=gomp
  -DOpenMP_C_LIB_NAMES=gomp -DOpenMP_gomp_LIBRARY="$GOMP"
  # Line tables are all a sanitizer report needs (file:line in every frame); full debug info made the two builds
  # (most of this script's time on a 2-core CI machine) slower to compile and much slower to link.
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -gline-tables-only -DNDEBUG"
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -gline-tables-only -DNDEBUG")

# Regex of ctest names not run under ASan/UBSan; the reasons are in the header above.
ASAN_EXCLUDE=${ASAN_EXCLUDE-'^Streaming\.(AnyChunkSizeGivesTheSameTokens|SessionMemoryDoesNotGrowWithStreamLength)$'}

# OpenMP threads that wait for work sleep instead of spinning: CTest runs tests in parallel (-j nproc) and each test
# uses every core through oneDNN, so spinning waiters burn the cores the other tests need (measured on the 2-core
# machine while other jobs loaded it: `ctest -j2 -R CausalModel` took 411 s wall / 168 s CPU with the default
# policy, 52 s / 19 s passive; with `-R 'PtqSeanet|CausalModel|EncodecStreaming'` 685 s / 287 s against 72 s / 30 s).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
t0=$SECONDS
stamp() { echo "sanitize: $1 ($((SECONDS - t0)) s so far)"; }

for step in "${STEPS[@]}"; do
  case "$step" in
    asan)
      cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "${CLANG_ARGS[@]}" -DWAVTOK_SANITIZE=ON \
        -DWAVTOK_FUZZ=ON >/dev/null
      cmake --build build-asan -j"$JOBS"
      stamp "ASan+UBSan build done"
      # Leak checking on; UBSan reports abort (the build also uses -fno-sanitize-recover=undefined).
      export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
      export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp  # third-party leaks only, see the file
      export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
      (cd build-asan && ctest --output-on-failure -j"$JOBS" --timeout 1800 ${ASAN_EXCLUDE:+-E "$ASAN_EXCLUDE"})
      unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
      stamp "ASan+UBSan tests passed"
      ;;
    fuzz)
      WAVTOK_FUZZ_BUILD=build-asan JOBS=$JOBS bash scripts/fuzz.sh "$FUZZ_SECONDS"
      stamp "fuzzing done"
      ;;
    tsan)
      TSAN_TESTS=(codec_tests integration_tests)  # built from codec/*_test.cc and tests/*_test.cc
      if ! grep -qs 'Concurrent' codec/*_test.cc tests/*_test.cc; then
        stamp "ThreadSanitizer skipped: no *Concurrent* tests in codec/*_test.cc or tests/*_test.cc yet"
        continue
      fi
      cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo "${CLANG_ARGS[@]}" \
        -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_C_FLAGS="-fsanitize=thread" \
        -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
      cmake --build build-tsan -j"$JOBS" --target "${TSAN_TESTS[@]}"
      # libgomp and oneDNN are not instrumented: their internal synchronisation is invisible to TSan, so races
      # reported inside them are suppressed. Races in the engine's own code (also when called from them) are not.
      printf 'called_from_lib:libgomp.so.1\ncalled_from_lib:libdnnl.so.2\n' >build-tsan/tsan.supp
      export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/build-tsan/tsan.supp"
      for t in "${TSAN_TESTS[@]}"; do
        if [ -z "$(build-tsan/$t --gtest_list_tests --gtest_filter='*Concurrent*' | grep '^ ')" ]; then
          stamp "ThreadSanitizer: $t has no *Concurrent* tests"
        else
          (cd . && build-tsan/$t --gtest_filter='*Concurrent*')
          stamp "ThreadSanitizer tests of $t passed"
        fi
      done
      unset TSAN_OPTIONS
      ;;
    *)
      echo "sanitize: unknown step '$step' (asan, fuzz, tsan)" >&2
      exit 2
      ;;
  esac
done
