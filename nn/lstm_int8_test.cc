// The int8 LSTM's own kernels (nn/lstm_int8.h) against exact integer sums and an integer emulation of the
// arithmetic LstmInt8Params defines; every kernel this CPU runs, and oneDNN's lstm_forward, side by side.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/settings.h"
#include "nn/layers.h"
#include "nn/lstm_int8.h"

namespace wavtok {
namespace {

Tensor randn(std::vector<int64_t> shape, std::mt19937& rng, float scale) {
  Tensor t(shape);
  std::normal_distribution<float> d(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = d(rng);
  return t;
}

struct KernelGuard {  // restores the process-wide choice
  ~KernelGuard() { set_lstm_int8_kernel(LstmInt8Kernel::Auto); }
};

std::vector<LstmInt8Kernel> runnable_kernels() {
  std::vector<LstmInt8Kernel> ks;
  for (auto k : {LstmInt8Kernel::Portable, LstmInt8Kernel::Avx512Vnni, LstmInt8Kernel::OneDnnRnn})
    if (lstm_int8_kernel_supported(k)) ks.push_back(k);
  return ks;
}

// The GEMV kernels (portable: row-major; vnni: the documented packing, 8 blocks of 16 rows a group, zeros in the
// padding; 200 rows = one full group and a partial one)
// against int64 sums,
// with extreme codes (255 x -127, 255 x 127 everywhere: no saturation anywhere) and accumulation into acc.
TEST(LstmInt8Gemv, KernelsEqualIntegerSums) {
  std::mt19937 rng(3);
  for (int extreme = 0; extreme < 3; ++extreme) {
    const int rows = 200, cols = 333, blocks = (rows + 15) / 16, k4 = (cols + 3) / 4;
    std::vector<int8_t> w(size_t(rows) * cols), packed(size_t(blocks) * k4 * 64, 0);
    std::vector<uint8_t> h(size_t(k4) * 4, 0);
    std::uniform_int_distribution<int> dw(-127, 127), dh(0, 255);
    for (auto& v : w) v = int8_t(extreme == 0 ? dw(rng) : extreme == 1 ? -127 : 127);
    for (int k = 0; k < cols; ++k) h[size_t(k)] = uint8_t(extreme == 0 ? dh(rng) : 255);
    for (int r = 0; r < rows; ++r) {  // groups of 8 blocks of 16 rows, each group [k4, blocks in it, 16, 4]
      const int b = r / 16, g0 = b / 8 * 8, gs = std::min(8, blocks - g0);
      for (int k = 0; k < cols; ++k)
        packed[size_t(g0) * k4 * 64 + (size_t(k / 4) * gs + b - g0) * 64 + (r % 16) * 4 + k % 4] =
            w[size_t(r) * cols + k];
    }
    std::vector<int32_t> init(size_t(blocks) * 16);
    for (auto& v : init) v = dw(rng) * 1000;
    std::vector<int64_t> want(init.begin(), init.end());
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < cols; ++k) want[size_t(r)] += int64_t(w[size_t(r) * cols + k]) * h[size_t(k)];
    std::vector<int32_t> a = init;
    lstm_int8_gemv_portable(w.data(), rows, cols, h.data(), a.data());
    for (size_t r = 0; r < want.size(); ++r) ASSERT_EQ(a[r], want[r]) << "portable row " << r;
    if (lstm_int8_kernel_supported(LstmInt8Kernel::Avx512Vnni)) {
      a = init;
      lstm_int8_gemv_vnni(packed.data(), blocks, k4, h.data(), a.data());
      for (size_t r = 0; r < want.size(); ++r) ASSERT_EQ(a[r], want[r]) << "vnni row " << r;
    } else {
      std::printf("no AVX-512 VNNI here: the vnni GEMV is not run\n");
    }
  }
}

double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// An L-layer int8 LSTM (random weights, input wider than (-1, 1): the divisor), its outputs under each kernel,
// compared with an emulation of LstmInt8Params' arithmetic: inputs and hidden states as u8 codes
// clamp(rint(v * data_scale + data_shift)), weights as s8 codes clamp(rint(w / weight_scale[r])) per gate row,
// exact integer sums of s8 * (u8 - shift), gates and cell in float64, output = the last layer's dequantized codes.
void check_against_emulation(int H, int L, int64_t T, float data_scale, float data_shift, unsigned seed,
                             bool per_matrix = false) {
  SCOPED_TRACE("H " + std::to_string(H) + " L " + std::to_string(L) + " T " + std::to_string(T) + " scale " +
               std::to_string(data_scale) + " shift " + std::to_string(data_shift) +
               (per_matrix ? " per-matrix scales" : ""));
  std::mt19937 rng(seed);
  const int G = 4;
  std::vector<Tensor> wih, whh, bih, bhh;
  for (int l = 0; l < L; ++l) {
    wih.push_back(randn({G * H, H}, rng, 1.5f / std::sqrt(float(H))));
    whh.push_back(randn({G * H, H}, rng, 1.5f / std::sqrt(float(H))));
    bih.push_back(randn({G * H}, rng, 0.1f));
    bhh.push_back(randn({G * H}, rng, 0.1f));
  }
  Tensor x = randn({T, H}, rng, 2.0f);
  float a = 0;
  for (int64_t i = 0; i < x.numel(); ++i) a = std::max(a, std::abs(x[i]));
  for (int64_t i = 0; i < wih[0].numel(); ++i) wih[0][i] *= a;  // what apply_recipe stores: W_ih0 * divisor
  LstmInt8Params p;
  p.data_scale = data_scale;
  p.data_shift = data_shift;
  p.in_divisor = a;
  // Shared: one scale per gate row over every matrix; per matrix: [W_ih_l0, W_hh_l0, W_ih_l1, ...] rows.
  p.weight_scale.assign(size_t(G) * H * (per_matrix ? 2 * L : 1), 0.0f);
  auto slot = [&](int l, int m, int r) { return per_matrix ? (size_t(2) * l + m) * G * H + r : size_t(r); };
  for (int l = 0; l < L; ++l)
    for (int m = 0; m < 2; ++m) {
      const Tensor& w = m == 0 ? wih[size_t(l)] : whh[size_t(l)];
      for (int r = 0; r < G * H; ++r)
        for (int i = 0; i < H; ++i)
          p.weight_scale[slot(l, m, r)] = std::max(p.weight_scale[slot(l, m, r)], std::abs(w[r * H + i]) / 127.0f);
    }
  auto u8 = [&](float v) { return int(std::clamp(std::nearbyint(v * data_scale + data_shift), 0.0f, 255.0f)); };
  auto s8 = [&](float w, int l, int m, int r) {
    return int(std::clamp(std::nearbyint(w / p.weight_scale[slot(l, m, r)]), -127.0f, 127.0f));
  };
  const int zs = int(data_shift);
  std::vector<int> in(size_t(T) * H);
  for (int64_t i = 0; i < T * H; ++i) in[size_t(i)] = u8(x[i] / a);
  std::vector<double> ref(size_t(T) * H);
  for (int l = 0; l < L; ++l) {
    std::vector<int> hq(size_t(H), u8(0.0f));
    std::vector<double> c(size_t(H), 0.0);
    std::vector<int> out(size_t(T) * H);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> z(size_t(G) * H);
      for (int r = 0; r < G * H; ++r) {
        int64_t acc_i = 0, acc_h = 0;
        for (int i = 0; i < H; ++i) {
          acc_i += int64_t(s8(wih[l][r * H + i], l, 0, r)) * (in[size_t(t * H + i)] - zs);
          acc_h += int64_t(s8(whh[l][r * H + i], l, 1, r)) * (hq[size_t(i)] - zs);
        }
        z[size_t(r)] = (double(acc_i) * p.weight_scale[slot(l, 0, r)] + double(acc_h) * p.weight_scale[slot(l, 1, r)]) /
                           data_scale +
                       bih[l][r] + bhh[l][r];
      }
      for (int j = 0; j < H; ++j) {
        c[size_t(j)] = sigm(z[size_t(H + j)]) * c[size_t(j)] + sigm(z[size_t(j)]) * std::tanh(z[size_t(2 * H + j)]);
        const double h = sigm(z[size_t(3 * H + j)]) * std::tanh(c[size_t(j)]);
        hq[size_t(j)] = u8(float(h));
        out[size_t(t * H + j)] = hq[size_t(j)];
        if (l == L - 1) ref[size_t(t * H + j)] = (hq[size_t(j)] - data_shift) / data_scale;
      }
    }
    in = out;
  }
  Lstm lq(wih, whh, bih, bhh);
  lq.set_int8(p);
  KernelGuard guard;
  std::vector<Tensor> outs;
  for (LstmInt8Kernel k : runnable_kernels()) {
    set_lstm_int8_kernel(k);
    Tensor y({T, H});
    lq.forward(x.data(), T, y.data());
    int diff = 0;
    double err = 0;
    for (int64_t i = 0; i < T * H; ++i) {
      err = std::max(err, std::abs(y[i] - ref[size_t(i)]));
      diff += std::abs(y[i] - ref[size_t(i)]) > 1e-4;
    }
    std::printf("H %d L %d T %lld, %s: max |int8 - emulation| %.2e, %d outputs off\n", H, L, (long long)T,
                lstm_int8_kernel_name(k), err, diff);
    // A hidden code rounded differently from the emulation's would be an error of one code step; none allowed.
    EXPECT_LT(err, 1e-4) << lstm_int8_kernel_name(k);
    // Chunked with carried state: the same codes, so the same output.
    if (k != LstmInt8Kernel::OneDnnRnn) {
      Lstm::State st = lq.initial_state();
      Tensor y2({T, H});
      const int64_t a1 = T / 3;
      lq.forward(x.data(), a1, y2.data(), &st);
      lq.forward(x.data() + a1 * H, 1, y2.data() + a1 * H, &st);
      lq.forward(x.data() + (a1 + 1) * H, T - a1 - 1, y2.data() + (a1 + 1) * H, &st);
      for (int64_t i = 0; i < T * H; ++i) ASSERT_EQ(y2[i], y[i]) << lstm_int8_kernel_name(k) << " chunked " << i;
      // Created once per shape: a repeat call makes nothing new.
      const uint64_t made = shapes_created();
      Tensor y3({T, H});
      lq.forward(x.data(), T, y3.data());
      EXPECT_EQ(shapes_created(), made);
      for (int64_t i = 0; i < T * H; ++i) ASSERT_EQ(y3[i], y[i]);
      outs.push_back(y);
    }
  }
  // The own kernels differ only in how they sum integers: bit for bit the same outputs.
  for (size_t i = 1; i < outs.size(); ++i)
    for (int64_t j = 0; j < T * H; ++j) ASSERT_EQ(outs[i][j], outs[0][j]) << "kernel " << i << " output " << j;
}

TEST(LstmInt8Kernels, MatchIntegerEmulation) {
  check_against_emulation(32, 2, 40, 127.0f, 128.0f, 12);
  check_against_emulation(64, 2, 90, 127.0f, 128.0f, 5);
  // Widths that pad the packed weights (H % 4 != 0, 4H % 16 != 0), another data mapping, one layer.
  check_against_emulation(30, 2, 33, 100.0f, 120.0f, 7);
  check_against_emulation(21, 1, 25, 127.0f, 128.0f, 9);
  // Longer than the implementation's 256-step chunks (the chunked call below also crosses a chunk boundary).
  check_against_emulation(16, 2, 600, 127.0f, 128.0f, 4);
  // W_ih and W_hh of every layer under their own row scales (the onednn-rnn choice runs the own kernels then).
  check_against_emulation(32, 2, 40, 127.0f, 128.0f, 12, true);
  check_against_emulation(30, 2, 300, 100.0f, 120.0f, 7, true);
  check_against_emulation(21, 1, 25, 127.0f, 128.0f, 9, true);
}

TEST(LstmInt8Kernels, ChoiceFollowsTheCpu) {
  KernelGuard guard;
  set_lstm_int8_kernel(LstmInt8Kernel::Auto);           // whatever WAVTOK_LSTM_INT8_KERNEL said
  EXPECT_NE(lstm_int8_kernel(), LstmInt8Kernel::Auto);  // resolved
  if (lstm_int8_kernel_supported(LstmInt8Kernel::Avx512Vnni)) {
    EXPECT_EQ(lstm_int8_kernel(), LstmInt8Kernel::Avx512Vnni);
  } else {
    EXPECT_EQ(lstm_int8_kernel(), LstmInt8Kernel::Portable);
    EXPECT_THROW(set_lstm_int8_kernel(LstmInt8Kernel::Avx512Vnni), Error);
  }
  set_lstm_int8_kernel(LstmInt8Kernel::Portable);
  EXPECT_EQ(lstm_int8_kernel(), LstmInt8Kernel::Portable);
}

}  // namespace
}  // namespace wavtok
