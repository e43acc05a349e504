// Each oneDNN-backed layer against a direct float64 loop of the PyTorch definition.
#include "nn/layers.h"

#include <cmath>
#include <cstring>
#include <cstdio>
#include <random>

#include <gtest/gtest.h>

#include "core/settings.h"
#include "core/util.h"
#include "tests/testing/layer_testing.h"

namespace wavtok {
namespace {

using wavtok::testing::attention_probs;
using wavtok::testing::randn;

double max_abs_diff(const float* a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

double elu(double x) { return x > 0 ? x : std::expm1(x); }
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// apply_act's ELU (vectorised exp) against float64 expm1 over the whole float range that matters, plus specials.
TEST(Activations, EluMatchesExpm1) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 10.0f; v += 0.00137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, -1e-7f, -87.5f, -1e30f, 3e38f, -INFINITY, INFINITY}) x.push_back(v);
  std::vector<float> y = x;
  y.push_back(NAN);
  apply_act(Act::Elu, y.data(), int64_t(y.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = elu(double(x[i]));
    if (std::isinf(want)) {
      EXPECT_EQ(double(y[i]), want);
      continue;
    }
    worst = std::max(worst, std::abs(double(y[i]) - want));
  }
  EXPECT_LE(worst, 2.5e-7);  // a few float ulps of 1 (ELU's range for x < 0 is (-1, 0))
  EXPECT_TRUE(std::isnan(y.back()));
}

// ...and relative to the result near 0, as expm1: exp(x) - 1 in float loses most digits of a small output (up to
// 6e-8 absolute for any |x| < 0.35), which moved the EnCodec fixture's latents away from upstream.
TEST(Activations, EluIsRelativelyAccurateNearZero) {
  std::vector<float> x;
  for (float v = -0.5f; v < -1e-12f; v *= 0.9f) x.push_back(v);
  for (float v = -1e-3f; v < 0.0f; v += 1.3e-6f) x.push_back(v);
  std::vector<float> y = x;
  apply_act(Act::Elu, y.data(), int64_t(y.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, std::abs(double(y[i]) - elu(double(x[i]))) / std::abs(elu(double(x[i]))));
  EXPECT_LE(worst, 4.0 * 1.2e-7) << "relative error of ELU near 0";  // a few float ulps of the result
}

// SiLU (pos_net's GroupNorm + SiLU, Act::Silu) against x * sigmoid(x) in double.
TEST(Activations, SiluMatchesXSigmoidX) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 100.0f; v += 0.00731f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, -1e-7f, 1e-7f, -87.5f, 88.0f, -1e30f, 3e38f, INFINITY}) x.push_back(v);
  std::vector<float> y = x;
  y.push_back(NAN);
  apply_act(Act::Silu, y.data(), int64_t(y.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i], want = v / (1.0 + std::exp(-v));
    if (std::isinf(want)) {
      EXPECT_EQ(double(y[i]), want);
      continue;
    }
    worst = std::max(worst, std::abs(double(y[i]) - want) / std::max(1.0, std::abs(want)));
  }
  EXPECT_LE(worst, 5e-7);  // a few float ulps, relative where |SiLU| > 1
  EXPECT_TRUE(std::isnan(y.back()));
}

struct ConvCase {
  int cin, cout, k, stride, dil, groups;
  bool channels_last;
};

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

// post(conv(x) + y0) in float64, PyTorch's definition; x and the result in the layer's layout.
std::vector<double> conv_ref(const ConvCase& p, const Tensor& x, int64_t T, const Tensor& w, const Tensor& b,
                             const float* y0, Act post) {
  const int64_t To = (T - p.dil * (p.k - 1) - 1) / p.stride + 1;
  auto X = [&](int c, int64_t t) { return p.channels_last ? x[t * p.cin + c] : x[c * T + t]; };
  auto idx = [&](int o, int64_t t) { return p.channels_last ? t * p.cout + o : o * To + t; };
  std::vector<double> ref(static_cast<size_t>(To * p.cout));
  const int cg = p.cin / p.groups, og = p.cout / p.groups;
  for (int o = 0; o < p.cout; ++o)
    for (int64_t t = 0; t < To; ++t) {
      double s = b[o];
      const int g = o / og;
      for (int i = 0; i < cg; ++i)
        for (int k = 0; k < p.k; ++k)
          s += double(w[(int64_t(o) * cg + i) * p.k + k]) * X(g * cg + i, t * p.stride + k * p.dil);
      if (y0) s += y0[idx(o, t)];
      ref[idx(o, t)] = post == Act::Elu ? elu(s) : s;
    }
  return ref;
}

TEST_P(ConvTest, MatchesDirectConvolution) {
  const ConvCase p = GetParam();
  std::mt19937 rng(1);
  const int64_t T = 57;
  Tensor w = randn({p.cout, p.cin / p.groups, p.k}, rng, 0.3f), b = randn({p.cout}, rng);
  Tensor x = randn(p.channels_last ? std::vector<int64_t>{T, p.cin} : std::vector<int64_t>{p.cin, T}, rng);
  Conv1d conv(w, b, p.stride, p.dil, p.groups, p.channels_last, Act::Elu);
  const int64_t To = conv.out_len(T);
  ASSERT_EQ(To, (T - p.dil * (p.k - 1) - 1) / p.stride + 1);
  Tensor y = randn(p.channels_last ? std::vector<int64_t>{To, p.cout} : std::vector<int64_t>{p.cout, To}, rng);
  Tensor y0 = y;
  conv.forward(x.data(), T, y.data(), /*accumulate=*/true);
  EXPECT_LT(max_abs_diff(y.data(), conv_ref(p, x, T, w, b, y0.data(), Act::Elu)), 1e-4);
}

// One input channel, no fused activation (a mono waveform's first conv): against the float64 definition, with and
// without accumulate, several strides / dilations / widths; and any split of a long input gives the same bits, as
// the streaming encoder needs.
TEST(Conv1d, OneInputChannelMatchesDirectConvolution) {
  std::mt19937 rng(5);
  for (const ConvCase p : {ConvCase{1, 16, 7, 1, 1, 1, true}, ConvCase{1, 5, 4, 2, 3, 1, true},
                           ConvCase{1, 32, 1, 1, 1, 1, true}}) {
    const int64_t T = 301;
    Tensor w = randn({p.cout, 1, p.k}, rng, 0.3f), b = randn({p.cout}, rng), x = randn({T, 1}, rng);
    Conv1d conv(w, b, p.stride, p.dil, 1, true);
    const int64_t To = conv.out_len(T);
    Tensor y({To, p.cout});
    conv.forward(x.data(), T, y.data());
    EXPECT_LT(max_abs_diff(y.data(), conv_ref(p, x, T, w, b, nullptr, Act::None)), 1e-5) << p.k;
    Tensor ya = randn({To, p.cout}, rng), y0 = ya;
    conv.forward(x.data(), T, ya.data(), /*accumulate=*/true);
    EXPECT_LT(max_abs_diff(ya.data(), conv_ref(p, x, T, w, b, y0.data(), Act::None)), 1e-5) << p.k;
    const int64_t cut = 77;  // outputs [0, cut) and [cut, To) from two calls
    Tensor y1({To, p.cout});
    conv.forward(x.data(), (cut - 1) * p.stride + p.dil * (p.k - 1) + 1, y1.data());
    conv.forward(x.data() + cut * p.stride, T - cut * p.stride, y1.data() + cut * p.cout);
    EXPECT_EQ(0, std::memcmp(y.data(), y1.data(), size_t(y.numel()) * sizeof(float))) << p.k;
  }
}

// Precision::F64 on a conv that allows it (the encoders' convs): the float64 sum rounded once, so within one
// float32 step of the exact result everywhere, where oneDNN's float32 sums of 1792 products stray further on
// average. Convs that do not allow it, and any conv under F32, keep the oneDNN result.
TEST(Conv1d, F64AccumulatesInDouble) {
  std::mt19937 rng(5);
  const ConvCase p{256, 48, 7, 2, 1, 1, true};
  const int64_t T = 301;
  Tensor w = randn({p.cout, p.cin, p.k}, rng, 0.1f), b = randn({p.cout}, rng);
  Tensor x = randn({T, p.cin}, rng);
  Conv1d c64(w, b, p.stride, p.dil, 1, true, Act::Elu), c32(w, b, p.stride, p.dil, 1, true, Act::Elu);
  c64.allow_f64(true);
  const int64_t To = c64.out_len(T);
  Tensor y0 = randn({To, p.cout}, rng);
  const std::vector<double> ref = conv_ref(p, x, T, w, b, y0.data(), Act::Elu);
  auto run = [&](const Conv1d& c, Precision prec) {
    set_precision(prec);
    Tensor y = y0;
    c.forward(x.data(), T, y.data(), /*accumulate=*/true);
    set_precision(Precision::F32);
    return y;
  };
  auto ulps = [&](const Tensor& y, double* mean) {  // error in float32 steps at the exact value
    double worst = 0, sum = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const float r = float(ref[i]);
      const double step = double(std::nextafter(std::abs(r), INFINITY)) - std::abs(r);
      const double e = std::abs(double(y[int64_t(i)]) - ref[i]) / step;
      worst = std::max(worst, e);
      sum += e;
    }
    *mean = sum / double(ref.size());
    return worst;
  };
  double mean64 = 0, mean32 = 0;
  const Tensor y64 = run(c64, Precision::F64), y32 = run(c32, Precision::F64), y64_off = run(c64, Precision::F32);
  EXPECT_LE(ulps(y64, &mean64), 1.0);
  ulps(y32, &mean32);
  EXPECT_LT(mean64, mean32) << "float64 accumulation should be nearer the exact sums";
  EXPECT_EQ(max_abs_diff(y64_off.data(), std::vector<double>(y32.data(), y32.data() + y32.numel())), 0.0)
      << "under F32 an F64-allowed conv runs the oneDNN path";
  std::printf("mean error in float32 steps: f64 %.3f, oneDNN f32 %.3f\n", mean64, mean32);
}

// force_bf16 (a model file's bf16 encoder convs): on a CPU with native bf16 the conv runs on bf16-rounded inputs
// and weights with float32 sums, whatever the process precision, so it equals the exact convolution of the
// rounded operands to float32 accumulation error and differs from the float32 conv; without bf16 it is the float32
// conv bit for bit. A conv with < 16 inputs (memory bound) stays float32 either way.
TEST(Conv1d, ForcedBf16RoundsOperandsOnly) {
  std::mt19937 rng(9);
  const ConvCase p{64, 48, 5, 2, 1, 1, true};
  const int64_t T = 260;
  Tensor w = randn({p.cout, p.cin, p.k}, rng, 0.1f), b = randn({p.cout}, rng), x = randn({T, p.cin}, rng);
  auto rounded = [](Tensor t) {
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = bf16_to_float(float_to_bf16(t[i]));
    return t;
  };
  Conv1d cb(w, b, p.stride, p.dil, 1, true, Act::Elu), cf(w, b, p.stride, p.dil, 1, true, Act::Elu);
  cb.force_bf16(true);
  const int64_t To = cb.out_len(T);
  Tensor yb({To, p.cout}), yf({To, p.cout});
  cb.forward(x.data(), T, yb.data());
  cf.forward(x.data(), T, yf.data());
  const std::vector<double> ref_rounded = conv_ref(p, rounded(x), T, rounded(w), b, nullptr, Act::Elu);
  const std::vector<double> ref = conv_ref(p, x, T, w, b, nullptr, Act::Elu);
  const double err_rounded = max_abs_diff(yb.data(), ref_rounded), err_exact = max_abs_diff(yb.data(), ref);
  if (bf16_supported()) {
    EXPECT_LT(err_rounded, 2e-5) << "bf16 operands, float32 sums";
    EXPECT_GT(err_exact, 1e-3) << "the operands were not rounded to bf16";
    EXPECT_GT(err_exact, 20 * err_rounded);
  } else {
    EXPECT_EQ(0, std::memcmp(yb.data(), yf.data(), size_t(yb.numel()) * sizeof(float))) << "float32 fallback";
  }
  std::printf("forced bf16 (%s): max error %.2e vs the rounded operands, %.2e vs the exact conv\n",
              bf16_supported() ? "native" : "not on this CPU: float32", err_rounded, err_exact);
  // Few inputs: float32 whatever is asked (the first SEANet conv has one input channel).
  const ConvCase q{8, 16, 3, 1, 1, 1, true};
  Tensor w8 = randn({q.cout, q.cin, q.k}, rng, 0.3f), b8 = randn({q.cout}, rng), x8 = randn({T, q.cin}, rng);
  Conv1d c8(w8, b8, 1, 1, 1, true), c8f(w8, b8, 1, 1, 1, true);
  c8.force_bf16(true);
  EXPECT_FALSE(c8.bf16_pays());
  Tensor y8({c8.out_len(T), q.cout}), y8f({c8.out_len(T), q.cout});
  c8.forward(x8.data(), T, y8.data());
  c8f.forward(x8.data(), T, y8f.data());
  EXPECT_EQ(0, std::memcmp(y8.data(), y8f.data(), size_t(y8.numel()) * sizeof(float)));
}

// Long channels-last inputs run in whole tiles, the last one overlapping the one before, so a new input length
// makes no new primitive (4096-frame tiles for the thin kernel, 1024 for the other). Every length, with and
// without accumulation and post-op, must give the direct convolution.
TEST(Conv1d, LongInputsOfAnyLengthShareOneShape) {
  std::mt19937 rng(3);
  for (const ConvCase p : {ConvCase{4, 8, 3, 2, 2, 1, true}, ConvCase{48, 40, 5, 1, 1, 1, true}}) {
    for (Act post : {Act::None, Act::Elu}) {
      Tensor w = randn({p.cout, p.cin, p.k}, rng, 0.3f), b = randn({p.cout}, rng);
      Conv1d conv(w, b, p.stride, p.dil, 1, true, post);
      auto check = [&](int64_t to, bool acc) {
        const int64_t T =
            (to - 1) * p.stride + p.dil * (p.k - 1) + 1 + (p.stride > 1 ? to % 2 : 0);  // a spare sample on odd ones
        ASSERT_EQ(conv.out_len(T), to);
        Tensor x = randn({T, p.cin}, rng), y = randn({to, p.cout}, rng);
        const Tensor y0 = y;
        conv.forward(x.data(), T, y.data(), acc);
        ASSERT_LT(max_abs_diff(y.data(), conv_ref(p, x, T, w, b, acc ? y0.data() : nullptr, post)), 1e-4)
            << "cin " << p.cin << ", " << to << " outputs, accumulate " << acc;
      };
      for (int64_t to = 1; to <= 20; ++to)  // short: exact shapes (a stream's pushes)
        for (bool acc : {false, true}) check(to, acc);
      const size_t short_shapes = conv.cached_shapes();
      for (int64_t to : {4097, 4113, 8192, 8197, 12287, 5123, 4100})
        for (bool acc : {false, true}) check(to, acc);
      // one tile shape with and one without accumulation; accumulation into an ELU gets an exact call for the
      // remainder
      if (post == Act::None) EXPECT_LE(conv.cached_shapes(), short_shapes + 2) << "cin " << p.cin;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvTest,
                         ::testing::Values(ConvCase{8, 16, 7, 1, 1, 1, false}, ConvCase{16, 32, 8, 4, 1, 1, false},
                                           ConvCase{8, 4, 3, 1, 2, 1, false}, ConvCase{32, 32, 7, 1, 1, 32, true},
                                           ConvCase{24, 16, 3, 1, 1, 1, true}, ConvCase{1, 8, 7, 1, 1, 1, false}));

TEST(ConvTranspose1d, MatchesScatterDefinition) {
  std::mt19937 rng(2);
  const int cin = 16, cout = 8, k = 10, s = 5;
  const int64_t T = 13;
  Tensor w = randn({cin, cout, k}, rng, 0.3f), b = randn({cout}, rng), x = randn({cin, T}, rng);
  ConvTranspose1d ct(w, b, s);
  const int64_t To = ct.out_len(T);
  ASSERT_EQ(To, (T - 1) * s + k);
  Tensor y({cout, To});
  ct.forward(x.data(), T, y.data());
  std::vector<double> ref(cout * To);
  for (int o = 0; o < cout; ++o)
    for (int64_t t = 0; t < To; ++t) ref[o * To + t] = b[o];
  for (int i = 0; i < cin; ++i)
    for (int64_t t = 0; t < T; ++t)
      for (int o = 0; o < cout; ++o)
        for (int kk = 0; kk < k; ++kk)
          ref[o * To + t * s + kk] += double(x[i * T + t]) * w[(int64_t(i) * cout + o) * k + kk];
  EXPECT_LT(max_abs_diff(y.data(), ref), 1e-4);
}

// x [rows, cin] W^T + b in float64, W [cout, cin].
std::vector<double> linear_ref(const Tensor& x, const Tensor& w, const Tensor& b, int64_t rows) {
  const int64_t cout = w.dim(0), cin = w.dim(1);
  std::vector<double> ref(rows * cout);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < cout; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < cin; ++i) s += double(w[o * cin + i]) * x[r * cin + i];
      ref[r * cout + o] = s;
    }
  return ref;
}

TEST(Linear, MatchesMatrixProductWithGelu) {
  std::mt19937 rng(3);
  const int cin = 48, cout = 20;
  const int64_t rows = 9;
  Tensor w = randn({cout, cin}, rng, 0.2f), b = randn({cout}, rng), x = randn({rows, cin}, rng);
  Linear lin(w, b, Act::Gelu);
  Tensor y({rows, cout});
  lin.forward(x.data(), rows, y.data());
  std::vector<double> ref = linear_ref(x, w, b, rows);
  for (double& s : ref) s = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
  EXPECT_LT(max_abs_diff(y.data(), ref), 1e-4);
}

TEST(LayerNorm, NormalisesRowsThenAffine) {
  std::mt19937 rng(4);
  const int C = 64;
  const int64_t rows = 5;
  Tensor x = randn({rows, C}, rng, 3.0f), g = randn({C}, rng), b = randn({C}, rng), y({rows, C});
  LayerNorm ln(C, 1e-6f);
  ln.forward(x.data(), rows, y.data(), g.data(), b.data());
  std::vector<double> ref(rows * C);
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += x[r * C + c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (x[r * C + c] - m) * (x[r * C + c] - m);
    v /= C;
    for (int c = 0; c < C; ++c) ref[r * C + c] = (x[r * C + c] - m) / std::sqrt(v + 1e-6) * g[c] + b[c];
  }
  EXPECT_LT(max_abs_diff(y.data(), ref), 1e-4);
}

TEST(GroupNorm, NormalisesEachGroupOverTimeAndChannels) {
  std::mt19937 rng(5);
  const int C = 64, G = 32;
  const int64_t T = 11;
  Tensor x = randn({T, C}, rng, 2.0f), g = randn({C}, rng), b = randn({C}, rng), y({T, C});
  group_norm_tc(x.data(), T, C, G, 1e-6f, g.data(), b.data(), y.data(), true);
  std::vector<double> ref(T * C);
  const int cg = C / G;
  for (int grp = 0; grp < G; ++grp) {
    double m = 0, v = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int c = grp * cg; c < (grp + 1) * cg; ++c) m += x[t * C + c];
    m /= double(T * cg);
    for (int64_t t = 0; t < T; ++t)
      for (int c = grp * cg; c < (grp + 1) * cg; ++c) v += (x[t * C + c] - m) * (x[t * C + c] - m);
    v /= double(T * cg);
    for (int64_t t = 0; t < T; ++t)
      for (int c = grp * cg; c < (grp + 1) * cg; ++c) {
        double z = (x[t * C + c] - m) / std::sqrt(v + 1e-6) * g[c] + b[c];
        ref[t * C + c] = z * sigmoid(z);
      }
  }
  EXPECT_LT(max_abs_diff(y.data(), ref), 1e-4);
}

TEST(Lstm, TwoLayersMatchGateEquationsAndCarryState) {
  std::mt19937 rng(6);
  const int H = 16, L = 2;
  const int64_t T = 12;
  std::vector<Tensor> wih, whh, bih, bhh;
  for (int l = 0; l < L; ++l) {
    wih.push_back(randn({4 * H, H}, rng, 0.3f));
    whh.push_back(randn({4 * H, H}, rng, 0.3f));
    bih.push_back(randn({4 * H}, rng, 0.1f));
    bhh.push_back(randn({4 * H}, rng, 0.1f));
  }
  Tensor x = randn({T, H}, rng);
  // Reference: PyTorch's equations, gates in order i, f, g, o.
  std::vector<double> in(x.data(), x.data() + x.numel()), out;
  for (int l = 0; l < L; ++l) {
    std::vector<double> h(H, 0), c(H, 0);
    out.assign(T * H, 0);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> z(4 * H);
      for (int r = 0; r < 4 * H; ++r) {
        double s = bih[l][r] + bhh[l][r];
        for (int i = 0; i < H; ++i) s += wih[l][r * H + i] * in[t * H + i] + whh[l][r * H + i] * h[i];
        z[r] = s;
      }
      for (int j = 0; j < H; ++j) {
        const double ig = sigmoid(z[j]), fg = sigmoid(z[H + j]), gg = std::tanh(z[2 * H + j]),
                     og = sigmoid(z[3 * H + j]);
        c[j] = fg * c[j] + ig * gg;
        h[j] = og * std::tanh(c[j]);
        out[t * H + j] = h[j];
      }
    }
    in = out;
  }
  Lstm lstm(wih, whh, bih, bhh);
  Tensor y({T, H});
  lstm.forward(x.data(), T, y.data());
  EXPECT_LT(max_abs_diff(y.data(), out), 1e-4);
  // The same sequence in two chunks with carried state gives the same output.
  Lstm::State st = lstm.initial_state();
  Tensor y2({T, H});
  lstm.forward(x.data(), 5, y2.data(), &st);
  lstm.forward(x.data() + 5 * H, T - 5, y2.data() + 5 * H, &st);
  EXPECT_LT(max_abs_diff(y2.data(), out), 1e-4);
}

TEST(AttentionCore, MatchesSoftmaxAttention) {
  std::mt19937 rng(7);
  const int C = 32;
  const int64_t T = 19;
  Tensor q = randn({T, C}, rng), k = randn({T, C}, rng), v = randn({T, C}, rng), o({T, C}), scratch;
  AttentionCore att;
  att.forward(q.data(), k.data(), v.data(), T, C, o.data(), scratch);
  const std::vector<double> probs = attention_probs(q, k, T, C);
  std::vector<double> ref(T * C, 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j)
      for (int c = 0; c < C; ++c) ref[i * C + c] += probs[i * T + j] * v[j * C + c];
  EXPECT_LT(max_abs_diff(o.data(), ref), 1e-4);
}

// The per-layer primitive cache keeps the most recently used shapes only, so inputs of ever new lengths (a server,
// a growing stream window) cannot grow it without bound.
TEST(ShapeCache, EvictsTheLeastRecentlyUsedShape) {
  ShapeCache<int> cache(3);
  int made = 0;
  auto get = [&](int64_t k) {
    return *cache.get(k, [&] {
      ++made;
      return int(k) * 10;
    });
  };
  EXPECT_EQ(get(1), 10);
  EXPECT_EQ(get(2), 20);
  EXPECT_EQ(get(3), 30);
  EXPECT_EQ(made, 3);
  EXPECT_EQ(get(1), 10);  // hit: 1 is now the most recent
  EXPECT_EQ(made, 3);
  EXPECT_EQ(get(4), 40);  // evicts 2, the least recently used
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(made, 4);
  get(1), get(3), get(4);
  EXPECT_EQ(made, 4);
  EXPECT_EQ(get(2), 20);  // made again
  EXPECT_EQ(made, 5);
}

TEST(WeightCache, OneCopyPerLayout) {
  WeightCache cache;
  int made = 0;
  dnnl::memory::desc a({4, 8}, ddt::f32, dtag::ab), b({4, 8}, ddt::f32, dtag::ba);
  auto make = [&](const dnnl::memory::desc& md) {
    return [&made, md] {
      ++made;
      return dnnl::memory(md, cpu_engine());
    };
  };
  dnnl::memory m1 = cache.get(a, make(a));
  dnnl::memory m2 = cache.get(a, make(a));
  EXPECT_EQ(m1.get_data_handle(), m2.get_data_handle());
  dnnl::memory m3 = cache.get(b, make(b));
  EXPECT_NE(m1.get_data_handle(), m3.get_data_handle());
  EXPECT_EQ(made, 2);
  EXPECT_EQ(cache.size(), 2u);
}

// More input lengths than the shape cache holds, then the first ones again (rebuilt after eviction, sharing the
// reordered weights): every call still matches the direct definition.
TEST(Linear, ManyInputLengthsStayExact) {
  std::mt19937 rng(11);
  const int cin = 24, cout = 16;
  Tensor w = randn({cout, cin}, rng, 0.3f), b = randn({cout}, rng);
  Linear lin(w, b, Act::None);
  std::vector<int64_t> lengths;
  for (int64_t r = 1; r <= 60; ++r) lengths.push_back(r);
  for (int64_t r = 1; r <= 5; ++r) lengths.push_back(r);
  for (int64_t rows : lengths) {
    Tensor x = randn({rows, cin}, rng), y({rows, cout});
    lin.forward(x.data(), rows, y.data());
    ASSERT_LT(max_abs_diff(y.data(), linear_ref(x, w, b, rows)), 1e-4) << rows << " rows";
  }
}

// Layers built from a read-only weight (a loaded Model's) alias its buffer; from any other tensor they copy it.
TEST(Linear, SharesReadOnlyWeightsAndCopiesOthers) {
  std::mt19937 rng(5);
  Tensor w = randn({6, 4}, rng), b = randn({6}, rng);
  Linear copied(w, b);
  EXPECT_NE(copied.weight().data(), w.data());
  w.make_read_only();
  b.make_read_only();
  Linear shared(w, b);
  EXPECT_EQ(shared.weight().data(), w.data());
  EXPECT_EQ(shared.bias().data(), b.data());
  Tensor x = randn({3, 4}, rng), y1({3, 6}), y2({3, 6});
  copied.forward(x.data(), 3, y1.data());
  shared.forward(x.data(), 3, y2.data());
  for (int64_t i = 0; i < y1.numel(); ++i) EXPECT_EQ(y1[i], y2[i]);
}

}  // namespace
}  // namespace wavtok
