// int8 Conv1d/Linear against an integer emulation of exactly the same quantization (codes computed with the
// same float expression, products summed in int64, dequantized in float64), and against the float layer.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "nn/layers.h"
#include "quant/log_quant.h"
#include "tests/testing/layer_testing.h"

namespace wavtok {
namespace {

using wavtok::testing::attention_probs;
using wavtok::testing::gelu;
using wavtok::testing::randn;
using wavtok::testing::weight_scales;

int32_t act_code(float x, int c, const Int8Params& p) {
  const float inv = p.in_scale.empty() ? 1.0f / p.act_scale : 1.0f / (p.in_scale[c] * p.act_scale);
  const float sh = p.in_shift.empty() ? 0.0f : p.in_shift[c];
  const float v = std::clamp((x - sh) * inv, -float(p.act_zero), 255.0f - float(p.act_zero));
  return static_cast<int32_t>(std::nearbyint(v)) + p.act_zero;
}

// Layer output y[t][o] (before post-ops) emulated: x[t*cin*?] accessed via X(c, t).
template <class XFn>
double emulate(const Tensor& w, const Tensor& b, const Int8Params& p, int o, int cin, int k, XFn X) {
  int64_t acc = 0;
  for (int i = 0; i < cin; ++i)
    for (int j = 0; j < k; ++j) {
      const float wv = w[(int64_t(o) * cin + i) * k + j];
      const int32_t qw = static_cast<int32_t>(std::clamp(std::nearbyint(wv / p.weight_scale[o]), -127.0f, 127.0f));
      acc += int64_t(act_code(X(i, j), i, p) - p.act_zero) * qw;
    }
  return double(p.act_scale) * p.weight_scale[o] * double(acc) + b[o];
}

Int8Params params_for(const Tensor& x, const Tensor& w, int cin, int cout, bool transform, std::mt19937& rng) {
  Int8Params p;
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  p.act_scale = (hi - lo) / 255.0f;
  p.act_zero = static_cast<int32_t>(std::nearbyint(-lo / p.act_scale));
  if (transform) {  // an arbitrary per-channel reparameterization; the float reference uses the same W'
    std::uniform_real_distribution<float> u(0.5f, 2.0f), d(-0.3f, 0.3f);
    for (int c = 0; c < cin; ++c) {
      p.in_scale.push_back(u(rng));
      p.in_shift.push_back(d(rng));
    }
    p.act_scale /= 1.5f;
  }
  p.weight_scale = weight_scales(w, cout);
  return p;
}

class LinearInt8 : public ::testing::TestWithParam<bool> {};

TEST_P(LinearInt8, MatchesIntegerEmulationAndFloat) {
  const bool transform = GetParam();
  std::mt19937 rng(7);
  const int cin = 96, cout = 80;
  const int64_t T = 37;
  Tensor w = randn({cout, cin}, rng, 0.2f), b = randn({cout}, rng);
  Tensor x = randn({T, cin}, rng, 1.0f, 0.4f);
  Int8Params p = params_for(x, w, cin, cout, transform, rng);
  Linear fl(w, b, Act::Gelu);
  Linear q(w, b, Act::Gelu);
  q.set_int8(p);
  ASSERT_TRUE(q.is_int8());
  Tensor y0 = randn({T, cout}, rng);
  Tensor yq = y0, yf = y0;
  q.forward(x.data(), T, yq.data(), /*accumulate=*/true);
  double max_err = 0, ref_mag = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int o = 0; o < cout; ++o) {
      const double e = gelu(emulate(w, b, p, o, cin, 1, [&](int i, int) { return x[t * cin + i]; }) + y0[t * cout + o]);
      max_err = std::max(max_err, std::abs(e - yq[t * cout + o]));
      ref_mag = std::max(ref_mag, std::abs(e));
    }
  EXPECT_LT(max_err, 1e-5 * std::max(1.0, ref_mag));
  if (!transform) {
    // Against the float layer: 8-bit error only (inputs ~N(0.4,1), 96 terms).
    fl.forward(x.data(), T, yf.data(), true);
    double num = 0, den = 0;
    for (int64_t i = 0; i < yf.numel(); ++i) {
      num += (double(yf[i]) - yq[i]) * (double(yf[i]) - yq[i]);
      den += double(yf[i]) * yf[i];
    }
    EXPECT_GT(10 * std::log10(den / num), 35.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Transforms, LinearInt8, ::testing::Values(false, true));

struct ConvInt8Case {
  int cin, cout, k, stride, dil;
  bool channels_last, transform;
};

class ConvInt8 : public ::testing::TestWithParam<ConvInt8Case> {};

TEST_P(ConvInt8, MatchesIntegerEmulationAndFloat) {
  const ConvInt8Case c = GetParam();
  std::mt19937 rng(3);
  const int64_t T = 45;
  Tensor w = randn({c.cout, c.cin, c.k}, rng, 0.2f), b = randn({c.cout}, rng);
  Tensor x = randn(c.channels_last ? std::vector<int64_t>{T, c.cin} : std::vector<int64_t>{c.cin, T}, rng, 1.0f, -0.2f);
  Int8Params p = params_for(x, w, c.cin, c.cout, c.transform, rng);
  Conv1d fl(w, b, c.stride, c.dil, 1, c.channels_last, Act::None);
  Conv1d q(w, b, c.stride, c.dil, 1, c.channels_last, Act::None);
  q.set_int8(p);
  const int64_t To = q.out_len(T);
  Tensor yq({To, c.cout}), yf({To, c.cout});
  q.forward(x.data(), T, yq.data());
  fl.forward(x.data(), T, yf.data());
  auto X = [&](int ch, int64_t t) { return c.channels_last ? x[t * c.cin + ch] : x[ch * T + t]; };
  auto idx = [&](int o, int64_t t) { return c.channels_last ? t * c.cout + o : o * To + t; };
  double max_err = 0, num = 0, den = 0;
  for (int64_t t = 0; t < To; ++t)
    for (int o = 0; o < c.cout; ++o) {
      const double e = emulate(w, b, p, o, c.cin, c.k, [&](int i, int j) { return X(i, t * c.stride + j * c.dil); });
      max_err = std::max(max_err, std::abs(e - yq[idx(o, t)]));
      num += (double(yf[idx(o, t)]) - yq[idx(o, t)]) * (double(yf[idx(o, t)]) - yq[idx(o, t)]);
      den += double(yf[idx(o, t)]) * yf[idx(o, t)];
    }
  EXPECT_LT(max_err, 2e-5 * std::max(1.0, std::sqrt(den / yf.numel()) * 4));
  if (!c.transform) {
    EXPECT_GT(10 * std::log10(den / num), 35.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvInt8,
                         ::testing::Values(ConvInt8Case{64, 48, 3, 1, 1, true, false},
                                           ConvInt8Case{32, 40, 7, 2, 1, false, false},
                                           ConvInt8Case{48, 64, 3, 1, 2, true, true},
                                           ConvInt8Case{16, 24, 4, 2, 1, false, true}));

// int8 ConvTranspose1d: symmetric s8 input codes clamp(rint(x * (1 / s_a)), -127, 127) (zero point 0, nothing
// folded into the bias), s8 per-output-channel weights. Every output, the edge ones (fewer taps) included, equals
// the integer emulation; inputs have a non-zero mean, so folding an input offset into the bias would show there.
struct DeconvInt8Case {
  int cin, cout, stride;
  bool channels_last;
};

class DeconvInt8 : public ::testing::TestWithParam<DeconvInt8Case> {};

TEST_P(DeconvInt8, MatchesIntegerEmulationAndFloat) {
  const DeconvInt8Case c = GetParam();
  const int k = 2 * c.stride;
  std::mt19937 rng(5);
  const int64_t T = 29;
  Tensor w = randn({c.cin, c.cout, k}, rng, 0.2f), b = randn({c.cout}, rng);  // PyTorch [Cin, Cout, K]
  Tensor x = randn(c.channels_last ? std::vector<int64_t>{T, c.cin} : std::vector<int64_t>{c.cin, T}, rng, 1.0f, 0.6f);
  Int8Params p;
  float m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::abs(x[i]));
  p.act_scale = m / 127.0f;
  p.act_zero = 0;
  p.weight_scale.assign(c.cout, 0.0f);
  for (int i = 0; i < c.cin; ++i)
    for (int o = 0; o < c.cout; ++o)
      for (int j = 0; j < k; ++j)
        p.weight_scale[o] = std::max(p.weight_scale[o], std::abs(w[(int64_t(i) * c.cout + o) * k + j]) / 127.0f);
  ConvTranspose1d fl(w, b, c.stride, c.channels_last);
  ConvTranspose1d q(w, b, c.stride, c.channels_last);
  q.set_int8(p);
  ASSERT_TRUE(q.is_int8());
  const int64_t To = q.out_len(T);
  Tensor yq({To, c.cout}), yf({To, c.cout});
  q.forward(x.data(), T, yq.data());
  fl.forward(x.data(), T, yf.data());
  auto X = [&](int ch, int64_t t) { return c.channels_last ? x[t * c.cin + ch] : x[ch * T + t]; };
  auto idx = [&](int o, int64_t t) { return c.channels_last ? t * c.cout + o : o * To + t; };
  const float inv = 1.0f / p.act_scale;
  double max_err = 0, ref_mag = 0, num = 0, den = 0;
  for (int64_t u = 0; u < To; ++u)
    for (int o = 0; o < c.cout; ++o) {
      int64_t acc = 0;
      for (int j = 0; j < k; ++j) {  // input t contributes to output u = t * stride + j
        if ((u - j) % c.stride != 0) continue;
        const int64_t t = (u - j) / c.stride;
        if (u - j < 0 || t >= T) continue;
        for (int i = 0; i < c.cin; ++i) {
          const int64_t qx = int64_t(std::nearbyint(std::clamp(X(i, t) * inv, -127.0f, 127.0f)));
          const float wv = w[(int64_t(i) * c.cout + o) * k + j];
          const int64_t qw = int64_t(std::clamp(std::nearbyint(wv / p.weight_scale[o]), -127.0f, 127.0f));
          acc += qx * qw;
        }
      }
      const double e = double(p.act_scale) * double(p.weight_scale[o]) * double(acc) + double(b[o]);
      max_err = std::max(max_err, std::abs(e - yq[idx(o, u)]));
      ref_mag = std::max(ref_mag, std::abs(e));
      num += (double(yf[idx(o, u)]) - yq[idx(o, u)]) * (double(yf[idx(o, u)]) - yq[idx(o, u)]);
      den += double(yf[idx(o, u)]) * yf[idx(o, u)];
    }
  EXPECT_LT(max_err, 1e-5 * std::max(1.0, ref_mag));
  const double snr = 10 * std::log10(den / num);
  EXPECT_GT(snr, 35.0) << "int8 vs float ConvTranspose1d";
  std::printf("deconv int8 cin %d cout %d stride %d %s: max err %.3g (ref max %.3g), SNR vs float %.1f dB\n", c.cin,
              c.cout, c.stride, c.channels_last ? "nwc" : "ncw", max_err, ref_mag, snr);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DeconvInt8,
                         ::testing::Values(DeconvInt8Case{64, 32, 2, true}, DeconvInt8Case{32, 16, 4, true},
                                           DeconvInt8Case{48, 24, 5, true}, DeconvInt8Case{128, 64, 8, true},
                                           DeconvInt8Case{32, 48, 2, false}, DeconvInt8Case{24, 16, 8, false}));

TEST(Int8Params, TransposedConvNeedsSymmetricInput) {
  std::mt19937 rng(9);
  ConvTranspose1d d(randn({8, 4, 4}, rng), randn({4}, rng), 2, true);
  Int8Params p;
  p.act_scale = 0.1f;
  p.act_zero = 3;
  p.weight_scale.assign(4, 0.01f);
  EXPECT_THROW(d.set_int8(p), Error);
  p.act_zero = 0;
  p.in_shift.assign(8, 0.0f);
  EXPECT_THROW(d.set_int8(p), Error);
  p.in_shift.clear();
  p.weight_scale.assign(8, 0.01f);  // Cin entries instead of Cout
  EXPECT_THROW(d.set_int8(p), Error);
}

// Post-softmax fake quantization: the attention output equals a float64 reference whose probabilities go through
// the same quantizer (codes from the float probabilities, dequantized by the level table) before P·V.
class SoftmaxQuant : public ::testing::TestWithParam<int> {};

TEST_P(SoftmaxQuant, AttentionMatchesQuantizedReference) {
  std::mt19937 rng(5);
  const int C = 32;
  const int64_t T = 41;
  Tensor q = randn({T, C}, rng, 1.5f), k = randn({T, C}, rng, 1.5f), v = randn({T, C}, rng), o({T, C}), o_f({T, C}),
         scratch;
  // Reference probabilities in float64, then rounded to float as the layer holds them.
  const std::vector<double> ref_probs = attention_probs(q, k, T, C);
  const std::vector<float> probs(ref_probs.begin(), ref_probs.end());
  quant::LogQuantSpec spec;
  spec.bits = 4;
  const int kind = GetParam();
  const quant::LogQParams p = kind == 0   ? quant::calibrate_log_sqrt2(probs, spec)
                              : kind == 1 ? quant::calibrate_adalog(probs, spec)
                                          : quant::calibrate_tanq(probs, spec);
  AttentionCore att, plain;
  att.set_prob_quant(std::make_shared<const quant::LogQParams>(p));
  ASSERT_NE(att.prob_quant(), nullptr);
  att.forward(q.data(), k.data(), v.data(), T, C, o.data(), scratch);
  plain.forward(q.data(), k.data(), v.data(), T, C, o_f.data(), scratch);
  double max_err = 0, max_ref = 0, diff_plain = 0;
  int changed = 0;
  for (int64_t i = 0; i < T; ++i)
    for (int c = 0; c < C; ++c) {
      double ref = 0;
      for (int64_t j = 0; j < T; ++j) {
        const float pq = p.levels[p.code(probs[i * T + j])];
        changed += (c == 0 && pq != probs[i * T + j]);
        ref += double(pq) * v[j * C + c];
      }
      max_err = std::max(max_err, std::abs(ref - o[i * C + c]));
      max_ref = std::max(max_ref, std::abs(ref));
      diff_plain = std::max(diff_plain, std::abs(double(o_f[i * C + c]) - o[i * C + c]));
    }
  EXPECT_LT(max_err, 1e-5 * std::max(1.0, max_ref));
  EXPECT_GT(changed, T * T / 2);  // the 4-bit quantizer really moved the probabilities
  EXPECT_GT(diff_plain, 1e-3);    // and the output differs from the float attention
}

INSTANTIATE_TEST_SUITE_P(Kinds, SoftmaxQuant, ::testing::Values(0, 1, 2));  // log-sqrt2, AdaLog, TanQ

TEST(Int8Params, RejectsInconsistentSizes) {
  std::mt19937 rng(1);
  Linear l(randn({8, 4}, rng), randn({8}, rng));
  Int8Params p;
  p.weight_scale.assign(7, 0.1f);
  EXPECT_THROW(l.set_int8(p), Error);
  p.weight_scale.assign(8, 0.1f);
  p.in_scale.assign(3, 1.0f);
  EXPECT_THROW(l.set_int8(p), Error);
  Conv1d dw(randn({4, 1, 3}, rng), randn({4}, rng), 1, 1, 4, true);
  Int8Params q;
  q.weight_scale.assign(4, 0.1f);
  q.in_scale.assign(1, 1.0f);  // one per input channel (4), not per group's input
  EXPECT_THROW(dw.set_int8(q), Error);
  q.in_scale.clear();
  q.dynamic = true;  // per-token activations: dense convs only
  EXPECT_THROW(dw.set_int8(q), Error);
  q.dynamic = false;
  dw.set_int8(q);
  EXPECT_TRUE(dw.is_int8());
}

// Grouped int8 convs (the ConvNeXt depthwise conv, groups == C; and 2 groups of dense channels) against the
// integer emulation: u8 codes per input channel with its own range (in_scale), s8 weight codes per output
// channel, the sum over the group's input channels only. Channels-last, as the backbone runs them.
class GroupedConvInt8 : public ::testing::TestWithParam<int> {};

TEST_P(GroupedConvInt8, MatchesIntegerEmulationAndFloat) {
  const int groups = GetParam();
  std::mt19937 rng(11);
  const int C = 48, K = 7, per = C / groups;  // Cin = Cout = C
  const int64_t T = 41;
  Tensor w = randn({C, per, K}, rng, 0.3f), b = randn({C}, rng);
  Tensor x({T, C});
  std::vector<float> range(C);
  std::normal_distribution<float> nd;
  for (int c = 0; c < C; ++c) {  // channel ranges spread over two decades, as in a residual stream
    const float s = std::pow(10.0f, float(c % 5) / 2.0f - 1.0f);
    for (int64_t t = 0; t < T; ++t) x[t * C + c] = s * nd(rng);
    for (int64_t t = 0; t < T; ++t) range[size_t(c)] = std::max(range[size_t(c)], std::fabs(x[t * C + c]));
  }
  Int8Params p;  // per-channel symmetric: codes rint(127 x / r_c) + 128, weights W' = W r_c
  p.act_scale = 1.0f / 127.0f;
  p.act_zero = 128;
  p.in_scale = range;
  Tensor wt = w;
  for (int o = 0; o < C; ++o)
    for (int i = 0; i < per; ++i)
      for (int k = 0; k < K; ++k) wt[(int64_t(o) * per + i) * K + k] *= range[size_t((o / per) * per + i)];
  p.weight_scale = weight_scales(wt, C);
  Conv1d fl(w, b, 1, 1, groups, true);
  Conv1d q(wt, b, 1, 1, groups, true);
  q.set_int8(p);
  ASSERT_TRUE(q.is_int8());
  const int64_t To = q.out_len(T);
  Tensor yq({To, C}), yf({To, C});
  q.forward(x.data(), T, yq.data());
  fl.forward(x.data(), T, yf.data());
  double max_err = 0, num = 0, den = 0;
  for (int64_t t = 0; t < To; ++t)
    for (int o = 0; o < C; ++o) {
      int64_t acc = 0;
      for (int i = 0; i < per; ++i) {
        const int c = (o / per) * per + i;  // the group's input channel
        for (int k = 0; k < K; ++k) {
          const float wv = wt[(int64_t(o) * per + i) * K + k];
          const auto qw = int64_t(std::clamp(std::nearbyint(wv / p.weight_scale[o]), -127.0f, 127.0f));
          acc += int64_t(act_code(x[(t + k) * C + c], c, p) - p.act_zero) * qw;
        }
      }
      const double e = double(p.act_scale) * p.weight_scale[o] * double(acc) + b[o];
      const double got = yq[t * C + o], ref = yf[t * C + o];
      max_err = std::max(max_err, std::abs(e - got));
      num += (ref - got) * (ref - got);
      den += ref * ref;
    }
  EXPECT_LT(max_err, 2e-5 * std::max(1.0, std::sqrt(den / yf.numel()) * 4));
  // Per-channel ranges keep the small channels: 8-bit error only against float.
  EXPECT_GT(10 * std::log10(den / num), 35.0);
  EXPECT_GT(num, 0.0);  // and it really ran in int8
}

INSTANTIATE_TEST_SUITE_P(Groups, GroupedConvInt8, ::testing::Values(48, 2));

double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The int8 LSTM (LstmInt8Params) against an emulation of the same arithmetic: layer inputs and hidden states as
// u8 codes clamp(rint(v * 127 + 128)), weights as s8 codes with one scale per gate row over every layer, exact
// integer dot products, cell state and gates in float64. It also differs from the float LSTM (it really ran int8),
// streams exactly (state carried as the dequantized hidden state) and refuses bad parameters.
TEST(LstmInt8, MatchesIntegerEmulationAndStreams) {
  std::mt19937 rng(12);
  const int H = 32, L = 2, G = 4;
  const int64_t T = 40;
  std::vector<Tensor> wih, whh, bih, bhh;
  for (int l = 0; l < L; ++l) {
    wih.push_back(randn({G * H, H}, rng, 0.3f));
    whh.push_back(randn({G * H, H}, rng, 0.3f));
    bih.push_back(randn({G * H}, rng, 0.1f));
    bhh.push_back(randn({G * H}, rng, 0.1f));
  }
  Tensor x = randn({T, H}, rng, 2.0f);  // wider than the hidden state's (-1, 1): needs the divisor
  float a = 0;
  for (int64_t i = 0; i < x.numel(); ++i) a = std::max(a, std::abs(x[i]));
  // What apply_recipe stores: W_ih0 * a, scales per gate row over all four matrices.
  std::vector<Tensor> wq = {wih[0], whh[0], wih[1], whh[1]};
  for (int64_t i = 0; i < wq[0].numel(); ++i) wq[0][i] *= a;
  LstmInt8Params p;
  p.in_divisor = a;
  p.weight_scale.assign(G * H, 0.0f);
  for (const Tensor& m : wq)
    for (int r = 0; r < G * H; ++r)
      for (int i = 0; i < H; ++i) p.weight_scale[r] = std::max(p.weight_scale[r], std::abs(m[r * H + i]) / 127.0f);
  auto u8 = [](double v) { return int(std::clamp(std::nearbyint(float(v) * 127.0f + 128.0f), 0.0f, 255.0f)); };
  auto s8 = [&](float w, int r) { return int(std::clamp(std::nearbyint(w / p.weight_scale[r]), -127.0f, 127.0f)); };
  std::vector<int> in(T * H);
  for (int64_t i = 0; i < T * H; ++i)
    in[i] = int(std::clamp(std::nearbyint(x[i] * (127.0f / a) + 128.0f), 0.0f, 255.0f));
  std::vector<double> ref(T * H);
  for (int l = 0; l < L; ++l) {
    const Tensor& Wi = wq[2 * l];
    const Tensor& Wh = wq[2 * l + 1];
    std::vector<int> hq(H, 128);
    std::vector<double> c(H, 0.0);
    std::vector<int> out(T * H);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> z(G * H);
      for (int r = 0; r < G * H; ++r) {
        int64_t acc = 0;  // sum of s8 * (u8 - 128): the shift compensated exactly
        for (int i = 0; i < H; ++i)
          acc += int64_t(s8(Wi[r * H + i], r)) * (in[t * H + i] - 128) + int64_t(s8(Wh[r * H + i], r)) * (hq[i] - 128);
        z[r] = double(acc) * p.weight_scale[r] / 127.0 + bih[l][r] + bhh[l][r];
      }
      for (int j = 0; j < H; ++j) {
        c[j] = sigm(z[H + j]) * c[j] + sigm(z[j]) * std::tanh(z[2 * H + j]);
        const double h = sigm(z[3 * H + j]) * std::tanh(c[j]);
        hq[j] = u8(h);
        out[t * H + j] = hq[j];
        if (l == L - 1) ref[t * H + j] = (hq[j] - 128) / 127.0;  // oneDNN's f32 output is the dequantized code
      }
    }
    in = out;
  }
  Lstm fl(wih, whh, bih, bhh);
  Tensor yf({T, H});
  fl.forward(x.data(), T, yf.data());
  Lstm lq({wq[0], wq[2]}, {wq[1], wq[3]}, bih, bhh);
  lq.set_int8(p);
  Tensor y({T, H});
  lq.forward(x.data(), T, y.data());
  double err = 0, dev = 0;
  for (int64_t i = 0; i < T * H; ++i) {
    err = std::max(err, std::abs(y[i] - ref[i]));
    dev = std::max(dev, std::abs(double(y[i]) - yf[i]));
  }
  std::printf("int8 LSTM: max |int8 - emulation| %.2e, max |int8 - float| %.2e\n", err, dev);
  // One hidden code rounded differently by oneDNN's float arithmetic than by the emulation's would show as an
  // error of 1/127 = 7.9e-3; the bound allows none.
  EXPECT_LT(err, 1e-4);
  EXPECT_GT(dev, 1e-3);
  // Chunked with carried state: the same codes, so the same output.
  Lstm::State st = lq.initial_state();
  Tensor y2({T, H});
  lq.forward(x.data(), 7, y2.data(), &st);
  lq.forward(x.data() + 7 * H, 1, y2.data() + 7 * H, &st);
  lq.forward(x.data() + 8 * H, T - 8, y2.data() + 8 * H, &st);
  for (int64_t i = 0; i < T * H; ++i) ASSERT_NEAR(y2[i], y[i], 1e-6) << i;
  // Bad parameters.
  LstmInt8Params bad = p;
  bad.weight_scale.pop_back();
  EXPECT_THROW(lq.set_int8(bad), Error);
  bad = p;
  bad.weight_scale[3] = 0.0f;
  EXPECT_THROW(lq.set_int8(bad), Error);
  bad = p;
  bad.in_divisor = std::nanf("");
  EXPECT_THROW(lq.set_int8(bad), Error);
}

TEST(ActObserver, SeesNamedLayerInputs) {
  std::mt19937 rng(2);
  Linear l(randn({5, 6}, rng), randn({5}, rng));
  l.set_name("probe");
  Tensor x = randn({3, 6}, rng), y({3, 5});
  int calls = 0;
  ActObserver obs = [&](const std::string& name, const float* in, int64_t rows, int cols, bool cl,
                        const ObservedGeometry&) {
    EXPECT_EQ(name, "probe");
    EXPECT_EQ(in, x.data());
    EXPECT_EQ(rows, 3);
    EXPECT_EQ(cols, 6);
    EXPECT_TRUE(cl);
    ++calls;
  };
  set_act_observer(&obs);
  l.forward(x.data(), 3, y.data());
  set_act_observer(nullptr);
  l.forward(x.data(), 3, y.data());
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace wavtok
