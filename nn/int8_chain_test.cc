// int8 kept end to end (docs/PTQ.md "int8 end to end"): an int8 Linear writing the next int8 layer's u8 codes in
// its post-ops, the LayerNorm (and depthwise conv + LayerNorm) writing codes, a chain of two int8 layers kept in
// u8, and the int8 attention; each against an emulation computed here (integer products summed in int64, the
// float steps in float64 or with the same float expression), independent of oneDNN.
#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "nn/layer_support.h"
#include "nn/layers.h"
#include "tests/testing/layer_testing.h"

namespace wavtok {
namespace {

using wavtok::testing::gelu;
using wavtok::testing::randn;
using wavtok::testing::weight_scales;

int32_t wcode(float w, float s) { return int32_t(std::clamp(std::nearbyint(w / s), -127.0f, 127.0f)); }

// Input quantizer params for values in [lo, hi], optionally with a per-channel shift/divisor.
Int8Params params(float lo, float hi, const Tensor& w, int cin, int cout, bool transform, std::mt19937& rng) {
  Int8Params p;
  p.act_scale = (hi - lo) / 255.0f;
  p.act_zero = int32_t(std::nearbyint(-lo / p.act_scale));
  if (transform) {
    std::uniform_real_distribution<float> u(0.5f, 2.0f), d(-0.3f, 0.3f);
    for (int c = 0; c < cin; ++c) {
      p.in_scale.push_back(u(rng));
      p.in_shift.push_back(d(rng));
    }
  }
  p.weight_scale = weight_scales(w, cout);
  return p;
}

// The value a requantizer rounds, in code units: v * mul[c] + add[c] (exact arithmetic).
double code_value(double v, int c, const Int8Params& p) {
  const double inv = 1.0 / ((p.in_scale.empty() ? 1.0 : double(p.in_scale[c])) * p.act_scale);
  const double sh = p.in_shift.empty() ? 0.0 : p.in_shift[c];
  return (v - sh) * inv + p.act_zero;
}

// Compares engine codes with the exactly computed values `u` (before rounding): equal, except where u lies within
// `tie` of a rounding boundary, where they may differ by one. Returns how many differ.
int compare_codes(const uint8_t* got, const std::vector<double>& u, double tie, const char* what) {
  int differ = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    const double want = std::clamp(std::nearbyint(u[i]), 0.0, 255.0);
    if (got[i] == want) continue;
    ++differ;
    const double frac = std::abs(u[i] - std::floor(u[i]) - 0.5);
    EXPECT_TRUE(frac < tie && std::abs(double(got[i]) - want) <= 1.0)
        << what << " code " << i << ": got " << int(got[i]) << ", exact value " << u[i];
  }
  return differ;
}

// Exact value of int8 Linear output o for row codes q (zero point z): s_a s_w[o] sum (q - z) q_w + b[o].
double linear_from_codes(const uint8_t* q, const Tensor& w, const Tensor& b, const Int8Params& p, int o, int cin) {
  int64_t acc = 0;
  for (int i = 0; i < cin; ++i)
    acc += int64_t(int(q[i]) - p.act_zero) * wcode(w[int64_t(o) * cin + i], p.weight_scale[o]);
  return double(p.act_scale) * p.weight_scale[o] * double(acc) + b[o];
}

// Codes of x by the quantizer of `p` (the layers' float expression, nn/layers.cc quantize_act).
std::vector<uint8_t> act_codes(const Tensor& x, int cin, const Int8Params& p) {
  std::vector<uint8_t> q(size_t(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int c = int(i % cin);
    const float inv = p.in_scale.empty() ? 1.0f / p.act_scale : 1.0f / (p.in_scale[c] * p.act_scale);
    const float sh = p.in_shift.empty() ? 0.0f : p.in_shift[c];
    const float v = std::clamp((x[i] - sh) * inv, -float(p.act_zero), 255.0f - float(p.act_zero));
    q[size_t(i)] = uint8_t(int(std::nearbyint(v)) + p.act_zero);
  }
  return q;
}

class Int8ChainLinear : public ::testing::TestWithParam<bool> {};

// Linear(96 -> 120, GELU) chained into Linear(120 -> 64): the first writes the second's codes in its post-ops.
TEST_P(Int8ChainLinear, CodesOutAndChainEqualEmulation) {
  const bool transform = GetParam();
  std::mt19937 rng(11);
  const int c0 = 96, c1 = 120, c2 = 64;
  const int64_t T = 41;
  Tensor w1 = randn({c1, c0}, rng, 0.15f), b1 = randn({c1}, rng, 0.5f);
  Tensor w2 = randn({c2, c1}, rng, 0.15f), b2 = randn({c2}, rng, 0.5f);
  Tensor x = randn({T, c0}, rng, 1.0f, 0.3f);
  const Int8Params p1 = params(-3.5f, 4.2f, w1, c0, c1, false, rng);
  const Int8Params p2 = params(-0.3f, 3.0f, w2, c1, c2, transform, rng);
  Linear l1(w1, b1, Act::Gelu), l2(w2, b2);
  l1.set_int8(p1);
  l2.set_int8(p2);
  EXPECT_THROW(l1.forward_to_codes(x.data(), T, nullptr), Error);  // not chained yet
  l1.chain_to(l2);
  ASSERT_TRUE(l1.chained());

  std::vector<uint8_t> codes(size_t(T * c1)), codes2(size_t(T * c1));
  l1.forward_to_codes(x.data(), T, codes.data());
  // The same from codes made outside (the layer's own input quantizer): the very same primitive, the same codes.
  const std::vector<uint8_t> q0 = act_codes(x, c0, p1);
  l1.forward_codes_to_codes(q0.data(), T, codes2.data());
  EXPECT_EQ(codes, codes2);

  // Layer 1's codes against the exact requantization of its exact output.
  std::vector<double> u(size_t(T * c1));
  for (int64_t t = 0; t < T; ++t)
    for (int o = 0; o < c1; ++o)
      u[size_t(t * c1 + o)] = code_value(gelu(linear_from_codes(q0.data() + t * c0, w1, b1, p1, o, c0)), o, p2);
  int clipped = 0;
  for (double v : u) clipped += v < -0.5 || v > 255.5;
  EXPECT_LT(clipped, int(u.size()) / 10);  // the test exercises the codes, not the saturation
  const int differ = compare_codes(codes.data(), u, 2e-3, "layer 1");
  EXPECT_LE(differ, 2);

  // Layer 2 on those codes, accumulating into y0: exact from the codes.
  Tensor y0 = randn({T, c2}, rng);
  Tensor y = y0;
  l2.forward_codes(codes.data(), T, y.data(), /*accumulate=*/true);
  double max_err = 0, mag = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int o = 0; o < c2; ++o) {
      const double e = linear_from_codes(codes.data() + t * c1, w2, b2, p2, o, c1) + y0[t * c2 + o];
      max_err = std::max(max_err, std::abs(e - y[t * c2 + o]));
      mag = std::max(mag, std::abs(e));
    }
  EXPECT_LT(max_err, 1e-5 * std::max(1.0, mag));

  // The whole chain against the emulated chain (codes from the exact values): equal up to the rounding ties.
  std::vector<uint8_t> ce(u.size());
  for (size_t i = 0; i < u.size(); ++i) ce[i] = uint8_t(std::clamp(std::nearbyint(u[i]), 0.0, 255.0));
  double step = 0;  // one code of layer 1 moves an output of layer 2 by at most this
  for (int o = 0; o < c2; ++o) step = std::max(step, double(p2.act_scale) * p2.weight_scale[o] * 127.0);
  double chain_err = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int o = 0; o < c2; ++o) {
      const double e = linear_from_codes(ce.data() + t * c1, w2, b2, p2, o, c1) + y0[t * c2 + o];
      chain_err = std::max(chain_err, std::abs(e - y[t * c2 + o]));
    }
  EXPECT_LE(chain_err, 1e-5 * std::max(1.0, mag) + differ * step);

  // Against the unchained layers (float between them): the same up to 8-bit requantization error.
  Tensor mid({T, c1}), yu = y0;
  l1.forward(x.data(), T, mid.data());
  l2.forward(mid.data(), T, yu.data(), true);
  double num = 0, den = 0;
  for (int64_t i = 0; i < yu.numel(); ++i) {
    num += (double(yu[i]) - y[i]) * (double(yu[i]) - y[i]);
    den += (double(yu[i]) - y0[i]) * (double(yu[i]) - y0[i]);
  }
  EXPECT_GT(10 * std::log10(den / std::max(num, 1e-30)), 40.0);
}

INSTANTIATE_TEST_SUITE_P(Transforms, Int8ChainLinear, ::testing::Values(false, true));

TEST(Int8Chain, RefusesFloatOrMismatchedLayers) {
  std::mt19937 rng(3);
  Tensor w = randn({8, 8}, rng), b = randn({8}, rng), w2 = randn({4, 6}, rng), b2 = randn({4}, rng);
  Linear a(w, b), f(w, b), n(w2, b2);
  a.set_int8(params(-1, 1, w, 8, 8, false, rng));
  n.set_int8(params(-1, 1, w2, 6, 4, false, rng));
  EXPECT_THROW(a.chain_to(f), Error);  // next is float
  EXPECT_THROW(a.chain_to(n), Error);  // 8 outputs into 6 inputs
  std::vector<uint8_t> q(64);
  EXPECT_THROW(f.forward_codes(q.data(), 1, nullptr), Error);
  Tensor x = randn({2, 8}, rng);
  EXPECT_THROW(layer_norm_to_codes(x.data(), 2, 8, 1e-6f, w.data(), b.data(), f, q.data()), Error);
}

// LayerNorm (and depthwise conv + LayerNorm) straight into the next layer's codes, against a float64 emulation.
class Int8ChainNorm : public ::testing::TestWithParam<bool> {};

TEST_P(Int8ChainNorm, LayerNormAndDwconvCodesEqualEmulation) {
  const bool transform = GetParam();
  std::mt19937 rng(5);
  const int C = 72, K = 7;  // not a multiple of 16: the lane loops' tails run too
  const int64_t n = 53;
  Tensor x = randn({n, C}, rng, 2.0f, 0.7f);
  Tensor scale = randn({C}, rng, 0.3f, 1.0f), shift = randn({C}, rng, 0.2f);
  Tensor wn = randn({16, C}, rng), bn = randn({16}, rng);
  Linear next(wn, bn);
  const Int8Params p = params(-3.0f, 3.5f, wn, C, 16, transform, rng);
  next.set_int8(p);
  const float eps = 1e-6f;
  auto ln_exact = [&](const std::vector<double>& r, std::vector<double>& u, size_t at) {
    double mean = 0, var = 0;
    for (double v : r) mean += v;
    mean /= C;
    for (double v : r) var += (v - mean) * (v - mean);
    var /= C;
    for (int c = 0; c < C; ++c)
      u[at + size_t(c)] = code_value((r[size_t(c)] - mean) / std::sqrt(var + eps) * scale[c] + shift[c], c, p);
  };
  // LayerNorm alone.
  std::vector<uint8_t> codes(size_t(n * C));
  layer_norm_to_codes(x.data(), n, C, eps, scale.data(), shift.data(), next, codes.data());
  std::vector<double> u(static_cast<size_t>(n * C)), r(static_cast<size_t>(C));
  for (int64_t t = 0; t < n; ++t) {
    for (int c = 0; c < C; ++c) r[size_t(c)] = x[t * C + c];
    ln_exact(r, u, size_t(t * C));
  }
  EXPECT_LE(compare_codes(codes.data(), u, 2e-3, "layernorm"), 2);
  // Depthwise conv (zero padding at both ends) + LayerNorm, for output rows [first, first + rows).
  Tensor w = randn({K, C}, rng, 0.4f), b = randn({C}, rng, 0.3f);
  for (const auto& [first, rows] : std::vector<std::pair<int64_t, int64_t>>{{0, n}, {5, 30}, {20, 33}}) {
    std::vector<uint8_t> dc(size_t(rows * C));
    dwconv_layer_norm_to_codes(x.data(), n, first, rows, C, K, w.data(), b.data(), eps, scale.data(), shift.data(),
                               next, dc.data());
    std::vector<double> du(size_t(rows * C));
    for (int64_t t = 0; t < rows; ++t) {
      for (int c = 0; c < C; ++c) {
        double acc = b[c];
        for (int k = 0; k < K; ++k) {
          const int64_t src = first + t + k - K / 2;
          if (src >= 0 && src < n) acc += double(w[k * C + c]) * x[src * C + c];
        }
        r[size_t(c)] = acc;
      }
      ln_exact(r, du, size_t(t * C));
    }
    EXPECT_LE(compare_codes(dc.data(), du, 2e-3, "dwconv+layernorm"), 2) << "first " << first;
  }
  EXPECT_THROW(dwconv_layer_norm_to_codes(x.data(), n, 0, n, C, 6, w.data(), b.data(), eps, scale.data(), shift.data(),
                                          next, codes.data()),
               Error);
}

INSTANTIATE_TEST_SUITE_P(Transforms, Int8ChainNorm, ::testing::Values(false, true));

// int8 attention against its emulation: the same symmetric codes (same float expression), scores from int64
// products, the exp codes from the same exp_nonpositive, the output from int64 products; and near the float
// attention (float64 softmax).
struct AttnCase {
  int64_t T;
  int C;
  int left, right;  // band; left < 0: all keys
  bool static_v;    // calibrated V scales (0.8 x max |v| per channel: some codes saturate) or run-time ones
};

class AttentionInt8 : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionInt8, MatchesIntegerEmulationAndFloat) {
  const AttnCase pc = GetParam();
  const int64_t T = pc.T;
  const int C = pc.C;
  std::mt19937 rng(21);
  Tensor q = randn({T, C}, rng, 1.0f, 0.2f), k = randn({T, C}, rng), v = randn({T, C}, rng, 1.0f, -0.3f);
  for (int64_t t = 0; t < T; ++t)  // keys of different norms: per-row K scales matter
    for (int c = 0; c < C; ++c) k[t * C + c] *= 0.5f + float(t % 5) * 0.3f;
  std::vector<float> v_static;
  if (pc.static_v) {
    v_static.assign(size_t(C), 0.0f);
    for (int64_t t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) v_static[size_t(c)] = std::max(v_static[size_t(c)], std::abs(v[t * C + c]));
    for (auto& x : v_static) x = 0.8f * x / 127.0f;
  }
  AttentionCore att;
  att.set_int8(true, v_static);
  att.set_window(pc.left, pc.right);
  Tensor out({T, C}), scratch;
  att.forward(q.data(), k.data(), v.data(), T, C, out.data(), scratch);

  // Emulation.
  auto sym = [](const float* x, int64_t n, int64_t stride, float& s) {  // scale of n values at stride
    float m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(x[i * stride]));
    s = m > 0 ? m / 127.0f : 1.0f;
  };
  auto code = [](float x, float s) { return int32_t(std::clamp(std::nearbyint(x * (1.0f / s)), -127.0f, 127.0f)); };
  std::vector<float> sq(T), sk(T), sv(C);
  for (int64_t t = 0; t < T; ++t) sym(q.data() + t * C, C, 1, sq[t]);
  for (int64_t t = 0; t < T; ++t) sym(k.data() + t * C, C, 1, sk[t]);
  for (int c = 0; c < C; ++c) sym(v.data() + c, T, C, sv[c]);
  if (pc.static_v) sv = v_static;
  const float inv_sqrt = 1.0f / std::sqrt(float(C));
  double max_err = 0, mag = 0, num = 0, den = 0;
  std::vector<int32_t> e(T);
  for (int64_t t = 0; t < T; ++t) {
    int64_t lo = 0, hi = T;
    if (pc.left >= 0) lo = std::max<int64_t>(0, t - pc.left), hi = std::min<int64_t>(T, t + pc.right + 1);
    std::vector<float> s(T);
    float m = -INFINITY;
    for (int64_t j = lo; j < hi; ++j) {
      int64_t acc = 0;
      for (int c = 0; c < C; ++c) acc += int64_t(code(q[t * C + c], sq[t])) * code(k[j * C + c], sk[j]);
      s[j] = float(acc) * (sq[t] * (sk[j] * inv_sqrt));
      m = std::max(m, s[j]);
    }
    int64_t sum = 0;
    std::fill(e.begin(), e.end(), 0);
    for (int64_t j = lo; j < hi; ++j) {
      e[j] = int32_t(std::nearbyint(exp_nonpositive(s[j] - m) * 255.0f));
      sum += e[j];
    }
    // float64 reference attention on the float inputs
    std::vector<double> pf(T, 0.0);
    double mf = -INFINITY, zf = 0;
    for (int64_t j = lo; j < hi; ++j) {
      double d = 0;
      for (int c = 0; c < C; ++c) d += double(q[t * C + c]) * k[j * C + c];
      pf[j] = d / std::sqrt(double(C));
      mf = std::max(mf, pf[j]);
    }
    for (int64_t j = lo; j < hi; ++j) zf += (pf[j] = std::exp(pf[j] - mf));
    for (int c = 0; c < C; ++c) {
      int64_t acc = 0;
      double ref = 0;
      for (int64_t j = lo; j < hi; ++j) {
        acc += int64_t(e[j]) * code(v[j * C + c], sv[c]);
        ref += pf[j] / zf * v[j * C + c];
      }
      const double want = double(acc) * sv[c] / double(sum);
      const double got = out[t * C + c];
      max_err = std::max(max_err, std::abs(want - got));
      mag = std::max(mag, std::abs(want));
      num += (ref - got) * (ref - got);
      den += ref * ref;
    }
  }
  EXPECT_LT(max_err, 2e-6 * std::max(1.0, mag));
  const double snr = 10 * std::log10(den / num);
  EXPECT_GT(snr, pc.static_v ? 20.0 : 25.0) << "int8 attention vs float64 attention";
  EXPECT_LT(snr, 80.0) << "the int8 path must actually quantize";
  std::printf(
      "[ attention T=%lld C=%d band %d/%d static V %d ] emulation max err %.3g (|out| %.3g), vs float %.1f dB\n",
      (long long)T, C, pc.left, pc.right, int(pc.static_v), max_err, mag, snr);

  // Turning int8 off gives the float result, bit for bit.
  AttentionCore fl;
  fl.set_window(pc.left, pc.right);
  Tensor of({T, C});
  fl.forward(q.data(), k.data(), v.data(), T, C, of.data(), scratch);
  att.set_int8(false);
  Tensor o2({T, C});
  att.forward(q.data(), k.data(), v.data(), T, C, o2.data(), scratch);
  for (int64_t i = 0; i < of.numel(); ++i) ASSERT_EQ(of[i], o2[i]);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionInt8,
                         ::testing::Values(AttnCase{97, 64, -1, -1, false}, AttnCase{130, 48, 20, 2, true},
                                           AttnCase{33, 200, -1, -1, true}, AttnCase{64, 32, 5, 0, false}));

// With calibrated V scales every row of a banded int8 attention depends on its band only: a window of the sequence
// gives the same rows bit for bit (a local model's stream equals its one-shot run).
TEST(AttentionInt8, BandedRowsDoNotDependOnTheWindow) {
  std::mt19937 rng(8);
  const int64_t T = 90;
  const int C = 40, left = 6, right = 2;
  Tensor q = randn({T, C}, rng), k = randn({T, C}, rng), v = randn({T, C}, rng);
  std::vector<float> vs(size_t(C), 3.0f / 127.0f);
  AttentionCore att;
  att.set_int8(true, vs);
  att.set_window(left, right);
  Tensor full({T, C}), scratch;
  att.forward(q.data(), k.data(), v.data(), T, C, full.data(), scratch);
  const int64_t a = 25, b = 70;  // the window; rows [a + left, b - right) have their whole band inside it
  Tensor part({b - a, C});
  att.forward(q.data() + a * C, k.data() + a * C, v.data() + a * C, b - a, C, part.data(), scratch);
  for (int64_t t = a + left; t < b - right; ++t)
    for (int c = 0; c < C; ++c) ASSERT_EQ(full[t * C + c], part[(t - a) * C + c]) << "row " << t;
}

TEST(AttentionInt8, RefusesBadVScales) {
  AttentionCore att;
  EXPECT_THROW(att.set_int8(true, {1.0f, 0.0f}), Error);
  EXPECT_THROW(att.set_int8(true, {1.0f, NAN}), Error);
  att.set_int8(true, {1.0f, 1.0f, 1.0f});  // 3 channels; the input has 4
  Tensor q({5, 4}), out({5, 4}), scratch;
  EXPECT_THROW(att.forward(q.data(), q.data(), q.data(), 5, 4, out.data(), scratch), Error);
}

}  // namespace
}  // namespace wavtok
