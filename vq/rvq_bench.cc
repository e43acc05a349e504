// Residual VQ encode cost per codebook: 1 codebook vs 32 (EnCodec 24 kHz sizes: 1024 x 32, 75 frames/s),
// released EnCodec (1024 x 128) and the WavTokenizer release size (4096 x 512), at each VqPrecision. The per-codebook
// time should not grow with n_q.
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
  const auto prec = static_cast<VqPrecision>(state.range(3));
  if (prec == VqPrecision::BF16 && !bf16_supported()) {
    state.SkipWithError("no native bf16 on this CPU");
    return;
  }
  set_vq_precision(prec);
  const int64_t frames = 750;  // 10 s at 75 frames/s
  ResidualVQ vq(books(nq, bins, dim));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor lat({dim, frames});
  for (int64_t i = 0; i < lat.numel(); ++i) lat[i] = nd(rng);
  std::vector<int32_t> codes(size_t(nq) * frames);
  reset_vq_rerank_stats();
  for (auto _ : state) {
    vq.encode(lat.data(), frames, nq, codes.data());
    benchmark::DoNotOptimize(codes.data());
  }
  const VqRerankStats st = vq_rerank_stats();  // how much exact rescoring the shortlist needed
  state.counters["rescored_frac"] = st.frames ? double(st.rescored) / double(st.frames) : 0.0;
  state.counters["cand_avg"] = st.rescored ? double(st.candidates) / double(st.rescored) : 0.0;
  // Seconds per codebook per 10 s of audio: compare across n_q.
  state.counters["per_codebook"] =
      benchmark::Counter(double(state.iterations()) * nq, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  set_vq_precision(VqPrecision::F32);
}

// Last argument: the VqPrecision (0 f32, 1 bf16, 2 int8). Sizes: this repo's EnCodec fixture (1024 x 32), released
// EnCodec 24 kHz (1024 x 128, 32 codebooks = 24 kbps), released WavTokenizer (4096 x 512).
BENCHMARK(BM_RvqEncode)
    ->ArgNames({"nq", "bins", "dim", "prec"})
    ->Args({1, 1024, 32, 0})
    ->Args({32, 1024, 32, 0})
    ->Args({32, 1024, 32, 1})
    ->Args({32, 1024, 32, 2})
    ->Args({32, 1024, 128, 0})
    ->Args({32, 1024, 128, 1})
    ->Args({32, 1024, 128, 2})
    ->Args({1, 4096, 512, 0})
    ->Args({1, 4096, 512, 1})
    ->Args({1, 4096, 512, 2})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace wavtok

BENCHMARK_MAIN();
