#!/usr/bin/env bash
# Builds the benchmarks into ./build-bench (Release, -march=native) and runs them:
#   1. `wavtok bench`: encode / decode / round trip speed (1 thread and all threads), per-phase peak memory,
#      a per-stage and per-layer profile with GFLOP/s against the core's FMA peak, and the PyTorch reference
#      (python/bench_reference.py, /usr/bin/python3) side by side; results also go to out/bench/bench.json.
#   2. layers_bench (Google Benchmark) at the released shapes; results to out/bench/layers.json.
# Arguments are passed to `wavtok bench` (default: --lengths 1,10,60 --repeats 3 --baseline --profile
# --streaming low-latency,default,high-fidelity).
# BENCH_JOBS (default 1) sets the build parallelism; SKIP_LAYERS=1 skips layers_bench.
# Example: scripts/bench.sh --lengths 1,10 --repeats 5 --baseline
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out/bench
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DWAVTOK_BUILD_BENCH=ON -DWAVTOK_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench --target wavtok_cli layers_bench -j"${BENCH_JOBS:-1}"
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(--lengths 1,10,60 --repeats 3 --baseline --profile --streaming low-latency,default,high-fidelity)
fi
lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | sed 's/Flags:.*/Flags: (see wavtok bench output)/'
build-bench/wavtok bench "${args[@]}" --json-out out/bench/bench.json
if [ "${SKIP_LAYERS:-0}" != 1 ]; then
  build-bench/layers_bench --benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out=out/bench/layers.json --benchmark_out_format=json
fi
