// Residual VQ encode cost per codebook: 1 codebook vs 32 (EnCodec 24 kHz sizes: 1024 x 32, 75 frames/s),
// and the WavTokenizer release size (4096 x 512). The per-codebook time should not grow with n_q.
#include <random>

#include <benchmark/benchmark.h>

#include "vq/rvq.h"

namespace wavtok {
namespace {

std::vector<Tensor> books(int n, int bins, int dim) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<Tensor> out;
  for (int q = 0; q < n; ++q) {
    Tensor t({bins, dim});
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = nd(rng) / float(q + 1);
    out.push_back(std::move(t));
  }
  return out;
}

void BM_RvqEncode(benchmark::State& state) {
  const int nq = int(state.range(0)), bins = int(state.range(1)), dim = int(state.range(2));
  const bool bf16 = state.range(3) != 0;
  if (bf16 && !bf16_supported()) {
    state.SkipWithError("no native bf16 on this CPU");
    return;
  }
  set_vq_precision(bf16 ? VqPrecision::BF16 : VqPrecision::F32);
  const int64_t frames = 750;  // 10 s at 75 frames/s
  ResidualVQ vq(books(nq, bins, dim));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor lat({dim, frames});
  for (int64_t i = 0; i < lat.numel(); ++i) lat[i] = nd(rng);
  std::vector<int32_t> codes(size_t(nq) * frames);
  for (auto _ : state) {
    vq.encode(lat.data(), frames, nq, codes.data());
    benchmark::DoNotOptimize(codes.data());
  }
  // Seconds per codebook per 10 s of audio: compare across n_q.
  state.counters["per_codebook"] =
      benchmark::Counter(double(state.iterations()) * nq, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  set_vq_precision(VqPrecision::F32);
}

// Last argument: 1 = bf16 codebook search (set_vq_precision).
BENCHMARK(BM_RvqEncode)
    ->ArgNames({"nq", "bins", "dim", "bf16"})
    ->Args({1, 1024, 32, 0})
    ->Args({32, 1024, 32, 0})
    ->Args({1, 4096, 512, 0})
    ->Args({32, 1024, 32, 1})
    ->Args({1, 4096, 512, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace wavtok

BENCHMARK_MAIN();
