// Low-bit (group-wise, mixed 2/3/4/8-bit) Conv1d/Linear against an integer emulation that works from the groups
// alone: per group, integer codes q times its integer multiplier m, summed in int64 against the u8 activation
// codes, dequantized with the row scale and the activation scale in float64. The layer itself only receives the
// float weights S * m * q and must recover the same s8 codes (docs/PTQ.md "Low-bit weights").
#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "nn/layers.h"
#include "quant/lowbit.h"
#include "tests/testing/layer_testing.h"

namespace wavtok {
namespace {

using wavtok::testing::randn;

struct LowBitCase {
  int cin, cout, k;
  int64_t group;
  bool conv, channels_last, transform;
};

class LowBitLayer : public ::testing::TestWithParam<LowBitCase> {};

TEST_P(LowBitLayer, MatchesIntegerEmulation) {
  const LowBitCase c = GetParam();
  std::mt19937 rng(11);
  const int64_t T = 29, cols = int64_t(c.cin) * c.k;
  Tensor w = randn({c.cout, c.cin, c.k}, rng, 0.2f), b = randn({c.cout}, rng);
  Tensor x = randn(c.channels_last ? std::vector<int64_t>{T, c.cin} : std::vector<int64_t>{c.cin, T}, rng, 1.0f, 0.3f);
  std::vector<float> xsq(static_cast<size_t>(cols));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (auto& v : xsq) v = std::pow(10.0f, -2.0f * u(rng));
  for (int o = 0; o < c.cout; ++o) {  // rows of very different magnitude: their groups get different widths
    const float s = std::pow(10.0f, -1.5f * u(rng));
    for (int64_t j = 0; j < cols; ++j) w[o * cols + j] *= s;
  }
  quant::LowBitSpec spec;
  spec.group = c.group;
  spec.avg_bits = 4.0;
  const quant::LowBitWeights lb =
      quant::quantize_lowbit(std::span<const float>(w.data(), w.numel()), c.cout, cols, xsq, spec);
  const std::vector<float> wq = lb.dequantize();
  Tensor wt({c.cout, c.cin, c.k}, wq);
  Int8Params p;
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  p.act_scale = (hi - lo) / 255.0f;
  p.act_zero = int32_t(std::nearbyint(-lo / p.act_scale));
  if (c.transform) {
    std::uniform_real_distribution<float> s(0.5f, 2.0f), d(-0.3f, 0.3f);
    for (int i = 0; i < c.cin; ++i) p.in_scale.push_back(s(rng)), p.in_shift.push_back(d(rng));
    p.act_scale /= 1.5f;
  }
  p.weight_scale = lb.row_scale;
  std::vector<float> y;
  int64_t To = T;
  if (c.conv) {
    Conv1d q(c.k == 1 ? Tensor({c.cout, c.cin, 1}, wq) : wt, b, 1, 1, 1, c.channels_last);
    q.set_int8(p);
    To = q.out_len(T);
    y.resize(size_t(To * c.cout));
    q.forward(x.data(), T, y.data());
  } else {
    Linear q(Tensor({c.cout, c.cin}, wq), b);
    q.set_int8(p);
    y.resize(size_t(To * c.cout));
    q.forward(x.data(), T, y.data());
  }
  auto X = [&](int ch, int64_t t) { return c.channels_last ? x[t * c.cin + ch] : x[ch * T + t]; };
  auto act_code = [&](float v, int ch) {
    const float inv = p.in_scale.empty() ? 1.0f / p.act_scale : 1.0f / (p.in_scale[ch] * p.act_scale);
    const float sh = p.in_shift.empty() ? 0.0f : p.in_shift[ch];
    const float a = std::clamp((v - sh) * inv, -float(p.act_zero), 255.0f - float(p.act_zero));
    return int64_t(std::nearbyint(a));  // code minus zero point
  };
  const int64_t G = lb.groups_per_row();
  double max_err = 0, mag = 0;
  int widths_seen[9] = {};
  for (int64_t t = 0; t < To; ++t)
    for (int o = 0; o < c.cout; ++o) {
      int64_t acc = 0;
      for (int64_t g = 0; g < G; ++g) {
        const int m = lb.mult[o * G + g];
        ++widths_seen[lb.bits[o * G + g]];
        int64_t part = 0;
        for (int64_t j = g * c.group; j < std::min(cols, (g + 1) * c.group); ++j) {
          const int qv = lb.codes[o * cols + j] / m;  // the group code, |q| <= 2^(b-1) - 1
          part += int64_t(qv) * act_code(X(int(j / c.k), t + j % c.k), int(j / c.k));
        }
        acc += int64_t(m) * part;
      }
      const double e = double(p.act_scale) * lb.row_scale[o] * double(acc) + b[o];
      const double got = c.channels_last || !c.conv ? y[t * c.cout + o] : y[o * To + t];
      max_err = std::max(max_err, std::abs(e - got));
      mag = std::max(mag, std::abs(e));
    }
  EXPECT_LT(max_err, 1e-5 * std::max(1.0, mag));
  EXPECT_GT(widths_seen[2] + widths_seen[3] + widths_seen[8], 0);  // really mixed widths
}

INSTANTIATE_TEST_SUITE_P(Layers, LowBitLayer,
                         ::testing::Values(LowBitCase{192, 64, 1, 64, false, true, false},
                                           LowBitCase{192, 64, 1, 64, false, true, true},
                                           LowBitCase{100, 48, 1, 32, false, true, false},  // ragged last group
                                           LowBitCase{64, 40, 3, 64, true, true, true},
                                           LowBitCase{48, 40, 7, 128, true, true, false},
                                           LowBitCase{64, 32, 3, 64, true, false, false}),
                         [](const ::testing::TestParamInfo<LowBitCase>& i) {
                           const LowBitCase& c = i.param;
                           return std::string(c.conv ? "Conv" : "Linear") + "_in" + std::to_string(c.cin) + "_out" +
                                  std::to_string(c.cout) + "_k" + std::to_string(c.k) + "_g" + std::to_string(c.group) +
                                  (c.channels_last ? "_nwc" : "_ncw") + (c.transform ? "_transform" : "");
                         });

}  // namespace
}  // namespace wavtok
