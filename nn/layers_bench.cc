// Google Benchmark microbenchmarks of the hot layers at the released WavTokenizer shapes (1 s of 24 kHz audio =
// 75 frames unless the argument says otherwise). The FLOPS counter is 2 x multiply-accumulates per second.
//   build-bench/layers_bench --benchmark_min_time=0.2 [--benchmark_filter=Linear]
// Thread count: OMP_NUM_THREADS (default here: 1, set in main unless the variable is given).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "core/dnnl_util.h"
#include "dsp/istft.h"
#include "nn/layers.h"
#include "nn/lstm_int8.h"
#include "vq/rvq.h"

namespace wavtok {
namespace {

Tensor random_tensor(std::vector<int64_t> shape, float bound, uint64_t seed) {
  Tensor t(std::move(shape));
  uint64_t s = seed * 2654435761ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t[i] = (float((s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f) * bound;
  }
  return t;
}

void flops(benchmark::State& st, double macs) {
  st.counters["FLOPS"] = benchmark::Counter(2.0 * macs, benchmark::Counter::kIsIterationInvariantRate);
}

// Args: cin, cout, kernel, stride, padded input length, channels_last, groups
void BM_Conv1d(benchmark::State& st) {
  const int cin = int(st.range(0)), cout = int(st.range(1)), k = int(st.range(2)), s = int(st.range(3));
  const int64_t tin = st.range(4);
  const bool cl = st.range(5) != 0;
  const int groups = int(st.range(6));
  Conv1d conv(random_tensor({cout, cin / groups, k}, 1.0f / std::sqrt(float(cin / groups * k)), 1),
              random_tensor({cout}, 0.1f, 2), s, 1, groups, cl);
  Tensor x = random_tensor({cin, tin}, 1.0f, 3);
  Tensor y({cout, conv.out_len(tin)});
  conv.forward(x.data(), tin, y.data());
  for (auto _ : st) {
    conv.forward(x.data(), tin, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  flops(st, double(cin / groups) * k * cout * conv.out_len(tin));
}
// The SEANet encoder convs as the model runs them (channels-last), 1 s of audio. Args: cin, cout, kernel, stride,
// padded input length, mode (0 float, 1 int8 with a static u8 range, 2 int8 per-token: Int8Params::dynamic, 3 int8
// per input step and group of 8 channels (or all where fewer): Int8Params::act_group).
void BM_Conv1dEncoderInt8(benchmark::State& st) {
  const int cin = int(st.range(0)), cout = int(st.range(1)), k = int(st.range(2)), s = int(st.range(3));
  const int64_t tin = st.range(4);
  const int mode = int(st.range(5));
  Conv1d conv(random_tensor({cout, cin, k}, 1.0f / std::sqrt(float(cin * k)), 1), random_tensor({cout}, 0.1f, 2), s,
              1, 1, true);
  if (mode > 0) {
    Int8Params p;
    p.weight_scale.assign(size_t(cout), 1.0f / std::sqrt(float(cin * k)) / 127.0f);
    if (mode == 1) p.act_scale = 2.0f / 255.0f, p.act_zero = 128;
    p.dynamic = mode >= 2;
    if (mode == 3) p.act_group = std::min(8, cin);
    conv.set_int8(p);
  }
  Tensor x = random_tensor({tin, cin}, 1.0f, 3);
  Tensor y({conv.out_len(tin), cout});
  conv.forward(x.data(), tin, y.data());
  for (auto _ : st) {
    conv.forward(x.data(), tin, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  flops(st, double(cin) * k * cout * conv.out_len(tin));
}
BENCHMARK(BM_Conv1dEncoderInt8)
    ->ArgNames({"cin", "cout", "k", "s", "tin", "mode"})
    ->ArgsProduct({{1}, {32}, {7}, {1}, {24006}, {0, 1, 2, 3}})
    ->ArgsProduct({{32}, {16}, {3}, {1}, {24002}, {0, 1, 2, 3}})
    ->ArgsProduct({{16}, {32}, {1}, {1}, {24000}, {0, 1, 2, 3}})
    ->ArgsProduct({{32}, {64}, {4}, {2}, {24002}, {0, 1, 2, 3}})
    ->ArgsProduct({{64}, {128}, {8}, {4}, {12004}, {0, 1, 2, 3}})
    ->ArgsProduct({{256}, {512}, {16}, {8}, {608}, {0, 1, 2, 3}})
    ->ArgsProduct({{512}, {512}, {7}, {1}, {81}, {0, 1, 2, 3}})
    // the shipped default model's encoder (n_filters 16) at 24 and 12 kHz
    ->ArgsProduct({{1}, {16}, {7}, {1}, {24006}, {0, 1, 2, 3}})
    ->ArgsProduct({{16}, {8}, {3}, {1}, {24002}, {0, 1, 2, 3}})
    ->ArgsProduct({{8}, {16}, {1}, {1}, {24000}, {0, 1, 2, 3}})
    ->ArgsProduct({{16}, {16}, {1}, {1}, {24000}, {0, 1, 2, 3}})
    ->ArgsProduct({{16}, {32}, {4}, {2}, {24002}, {0, 1, 2, 3}})
    ->ArgsProduct({{32}, {16}, {3}, {1}, {12002}, {0, 1, 2, 3}});

// Encoder (channels-first), 1 s of audio: input lengths include SConv1d's padding.
BENCHMARK(BM_Conv1d)
    ->ArgNames({"cin", "cout", "k", "s", "tin", "cl", "g"})
    ->Args({1, 32, 7, 1, 24006, 0, 1})
    ->Args({32, 16, 3, 1, 24002, 0, 1})
    ->Args({16, 32, 1, 1, 24000, 0, 1})
    ->Args({32, 32, 1, 1, 24000, 0, 1})
    ->Args({32, 64, 4, 2, 24002, 0, 1})
    ->Args({64, 32, 3, 1, 12002, 0, 1})
    ->Args({64, 128, 8, 4, 12004, 0, 1})
    ->Args({128, 64, 3, 1, 3002, 0, 1})
    ->Args({128, 256, 10, 5, 3005, 0, 1})
    ->Args({256, 128, 3, 1, 602, 0, 1})
    ->Args({256, 512, 16, 8, 608, 0, 1})
    ->Args({512, 512, 7, 1, 81, 0, 1})
    // The first conv as the SEANet encoder runs it (channels-last, one input channel), 1 s at the shipped model's
    // 16 and the released 32 filters (61 / 164 us on the build machine: oneDNN's brgconv handles it well)
    ->Args({1, 16, 7, 1, 24006, 1, 1})
    ->Args({1, 32, 7, 1, 24006, 1, 1})
    // Backbone (channels-last): embed, pos_net convs, ConvNeXt depthwise k7 at 75 and 300 frames
    ->Args({512, 768, 7, 1, 81, 1, 1})
    ->Args({768, 768, 3, 1, 77, 1, 1})
    ->Args({768, 768, 7, 1, 81, 1, 768})
    ->Args({768, 768, 7, 1, 306, 1, 768})
    ->Unit(benchmark::kMicrosecond);

// Args: in, out, rows, gelu
void BM_Linear(benchmark::State& st) {
  const int cin = int(st.range(0)), cout = int(st.range(1));
  const int64_t rows = st.range(2);
  Linear lin(random_tensor({cout, cin}, 1.0f / std::sqrt(float(cin)), 4), random_tensor({cout}, 0.1f, 5),
             st.range(3) ? Act::Gelu : Act::None);
  Tensor x = random_tensor({rows, cin}, 1.0f, 6);
  Tensor y({rows, cout});
  lin.forward(x.data(), rows, y.data());
  for (auto _ : st) {
    lin.forward(x.data(), rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  flops(st, double(cin) * cout * rows);
}
BENCHMARK(BM_Linear)
    ->ArgNames({"in", "out", "rows", "gelu"})
    ->ArgsProduct({{768}, {2304}, {75, 150, 300}, {1}})
    ->ArgsProduct({{2304}, {768}, {75, 150, 300}, {0}})
    ->ArgsProduct({{768}, {768, 1282}, {75, 300}, {0}})
    ->Unit(benchmark::kMicrosecond);

// Args: hidden (= input), layers, steps, int8 (u8 inputs, s8 weights with per-gate-row scales, LstmInt8Params):
// 0 float, 1 int8 with the kernel this CPU picks (nn/lstm_int8.h), 2 int8 on oneDNN's lstm_forward (the previous
// implementation), 3 int8 with the portable kernel.
void BM_Lstm(benchmark::State& st) {
  const int h = int(st.range(0)), layers = int(st.range(1));
  const int64_t T = st.range(2);
  std::vector<Tensor> wih, whh, bih, bhh;
  const float b = 1.0f / std::sqrt(float(h));
  for (int l = 0; l < layers; ++l) {
    wih.push_back(random_tensor({4 * h, h}, b, 10 + l));
    whh.push_back(random_tensor({4 * h, h}, b, 20 + l));
    bih.push_back(random_tensor({4 * h}, b, 30 + l));
    bhh.push_back(random_tensor({4 * h}, b, 40 + l));
  }
  Lstm lstm(wih, whh, bih, bhh);
  if (st.range(3)) {
    LstmInt8Params p;
    p.weight_scale.assign(size_t(4) * h, b / 127.0f);  // every |w| <= b
    lstm.set_int8(p);
  }
  const LstmInt8Kernel kernels[] = {LstmInt8Kernel::Auto, LstmInt8Kernel::Auto, LstmInt8Kernel::OneDnnRnn,
                                    LstmInt8Kernel::Portable};
  set_lstm_int8_kernel(kernels[st.range(3)]);
  st.SetLabel(st.range(3) ? lstm_int8_kernel_name(lstm_int8_kernel()) : "float");
  Tensor x = random_tensor({T, h}, 1.0f, 7);
  Tensor y({T, h});
  lstm.forward(x.data(), T, y.data());
  for (auto _ : st) {
    lstm.forward(x.data(), T, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_lstm_int8_kernel(LstmInt8Kernel::Auto);
  flops(st, double(layers) * 4.0 * h * 2.0 * h * T);
}
BENCHMARK(BM_Lstm)
    ->ArgNames({"h", "layers", "T", "int8"})
    ->ArgsProduct({{512}, {2}, {1, 4, 75, 300, 750}, {0, 1, 2, 3}})  // T 1, 4: streaming pushes
    ->ArgsProduct({{256}, {2}, {750}, {0, 1, 2, 3}})                 // the shipped model's encoder LSTM
    ->Unit(benchmark::kMicrosecond);

// The int8 LSTM's recurrent GEMV alone (nn/lstm_int8.h): 4H x H s8 weights times u8 codes. Args: hidden, kernel
// (0 portable, 1 avx512-vnni; skipped where the CPU lacks it).
void BM_LstmInt8Gemv(benchmark::State& st) {
  const int h = int(st.range(0)), rows = 4 * h, blocks = rows / 16, k4 = h / 4;
  if (st.range(1) && !lstm_int8_kernel_supported(LstmInt8Kernel::Avx512Vnni)) {
    st.SkipWithError("no AVX-512 VNNI");
    return;
  }
  std::vector<int8_t> w(size_t(rows) * h);
  std::vector<uint8_t> x(static_cast<size_t>(h));
  for (size_t i = 0; i < w.size(); ++i) w[i] = int8_t(int(i * 2654435761u >> 24) - 128 + (i % 3 == 0));
  for (size_t i = 0; i < x.size(); ++i) x[i] = uint8_t(i * 37);
  std::vector<int32_t> acc(static_cast<size_t>(rows));
  for (auto _ : st) {
    if (st.range(1)) lstm_int8_gemv_vnni(w.data(), blocks, k4, x.data(), acc.data());  // layout is irrelevant here
    else lstm_int8_gemv_portable(w.data(), rows, h, x.data(), acc.data());
    benchmark::DoNotOptimize(acc.data());
  }
  flops(st, 2.0 * rows * h);
}
BENCHMARK(BM_LstmInt8Gemv)->ArgNames({"h", "vnni"})->ArgsProduct({{256, 512}, {0, 1}})->Unit(benchmark::kMicrosecond);

// Args: T, C
void BM_AttentionCore(benchmark::State& st) {
  const int64_t T = st.range(0);
  const int C = int(st.range(1));
  AttentionCore core;
  Tensor q = random_tensor({T, C}, 1.0f, 8), k = random_tensor({T, C}, 1.0f, 9), v = random_tensor({T, C}, 1.0f, 10);
  Tensor o({T, C}), scratch;
  core.forward(q.data(), k.data(), v.data(), T, C, o.data(), scratch);
  for (auto _ : st) {
    core.forward(q.data(), k.data(), v.data(), T, C, o.data(), scratch);
    benchmark::DoNotOptimize(o.data());
  }
  flops(st, 2.0 * double(T) * T * C);
}
BENCHMARK(BM_AttentionCore)
    ->ArgNames({"T", "C"})
    ->Args({75, 768})
    ->Args({300, 768})
    ->Args({750, 768})
    ->Unit(benchmark::kMicrosecond);

// Args: frames, n_fft, hop. Includes the head's magnitude/phase -> complex step.
void BM_Istft(benchmark::State& st) {
  const int64_t F = st.range(0);
  const int n_fft = int(st.range(1)), hop = int(st.range(2)), bins = n_fft / 2 + 1;
  Tensor y = random_tensor({F, 2 * bins}, 1.0f, 11);
  std::vector<float> re(F * bins), im(F * bins);
  Istft istft(n_fft, hop);
  std::vector<float> audio(istft.output_length(F));
  for (auto _ : st) {
    for (int64_t t = 0; t < F; ++t) {
      const float* r = y.data() + t * 2 * bins;
      magphase_to_complex(r, r + bins, bins, re.data() + t * bins, im.data() + t * bins);
    }
    istft.inverse(re.data(), im.data(), F, audio.data());
    benchmark::DoNotOptimize(audio.data());
  }
  flops(st, 0.5 * 2.5 * n_fft * std::log2(double(n_fft)) * F);  // FFT flops counted as 2.5 n log2 n
}
BENCHMARK(BM_Istft)
    ->ArgNames({"F", "n_fft", "hop"})
    ->Args({75, 1280, 320})
    ->Args({300, 1280, 320})
    ->Unit(benchmark::kMicrosecond);

// Args: frames, bins, dim
void BM_VqSearch(benchmark::State& st) {
  const int64_t F = st.range(0);
  const int bins = int(st.range(1)), dim = int(st.range(2));
  std::vector<Tensor> books;
  books.push_back(random_tensor({bins, dim}, 1.0f, 12));
  ResidualVQ vq(std::move(books));
  Tensor x = random_tensor({dim, F}, 1.0f, 13);
  std::vector<int32_t> codes(F);
  vq.encode(x.data(), F, 1, codes.data());
  for (auto _ : st) {
    vq.encode(x.data(), F, 1, codes.data());
    benchmark::DoNotOptimize(codes.data());
  }
  flops(st, double(F) * bins * dim);
}
BENCHMARK(BM_VqSearch)
    ->ArgNames({"F", "bins", "dim"})
    ->Args({75, 4096, 512})
    ->Args({300, 4096, 512})
    ->Unit(benchmark::kMicrosecond);

// Elementwise work the encoder does outside oneDNN: ELU (apply_act) over C x T. Args: C, T
void BM_Elu(benchmark::State& st) {
  const int64_t n = st.range(0) * st.range(1);
  Tensor x = random_tensor({n}, 2.0f, 14);
  for (auto _ : st) {
    apply_act(Act::Elu, x.data(), n);
    benchmark::DoNotOptimize(x.data());
  }
  st.SetItemsProcessed(st.iterations() * n);
}
BENCHMARK(BM_Elu)
    ->ArgNames({"C", "T"})
    ->Args({32, 24000})
    ->Args({64, 12000})
    ->Args({256, 600})
    ->Unit(benchmark::kMicrosecond);

// GroupNorm (32 groups, + SiLU) on channels-last [T, C], as in the backbone's pos_net. Args: T, C
void BM_GroupNorm(benchmark::State& st) {
  const int64_t T = st.range(0);
  const int C = int(st.range(1));
  Tensor x = random_tensor({T, C}, 1.0f, 15), y({T, C});
  Tensor g = random_tensor({C}, 1.0f, 16), b = random_tensor({C}, 0.1f, 17);
  for (auto _ : st) {
    group_norm_tc(x.data(), T, C, 32, 1e-6f, g.data(), b.data(), y.data(), true);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * T * C);
}
BENCHMARK(BM_GroupNorm)->ArgNames({"T", "C"})->Args({75, 768})->Args({750, 768})->Unit(benchmark::kMicrosecond);

// LayerNorm over 768 on [T, 768] (ConvNeXt blocks). Args: T, C
void BM_LayerNorm(benchmark::State& st) {
  const int64_t T = st.range(0);
  const int C = int(st.range(1));
  LayerNorm ln(C, 1e-6f);
  Tensor x = random_tensor({T, C}, 1.0f, 18), y({T, C});
  Tensor g = random_tensor({C}, 1.0f, 19), b = random_tensor({C}, 0.1f, 20);
  for (auto _ : st) {
    ln.forward(x.data(), T, y.data(), g.data(), b.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * T * C);
}
BENCHMARK(BM_LayerNorm)->ArgNames({"T", "C"})->Args({75, 768})->Args({750, 768})->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace wavtok

int main(int argc, char** argv) {
  if (!std::getenv("OMP_NUM_THREADS")) wavtok::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
