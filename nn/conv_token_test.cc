// Per-token int8 Conv1d (Int8Params::dynamic) against an integer emulation written here from the definition in
// nn/layers.h: im2col rows gathered in torch's unfold order (c major, k minor), each row's range, zero point and
// u8 codes, exact int64 sums with the s8 weight codes, then the float epilogue (product, then sum): bit for bit.
// The same for per-step, per-group ranges (Int8Params::act_group).
#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/util.h"
#include "nn/layer_support.h"
#include "nn/layers.h"
#include "tests/testing/layer_testing.h"

namespace wavtok {
namespace {

using wavtok::testing::randn;
using wavtok::testing::weight_scales;

struct Shape {
  int cin, cout, k, stride, dil;
};

// y [tout, cout] (channels-last) of the per-token int8 conv, emulated. x is channels-last [tin, cin].
std::vector<float> emulate_token_conv(const Tensor& x, int64_t tin, const Tensor& w, const Tensor& b, const Shape& s,
                                      const std::vector<float>& ws, Act post, const std::vector<float>* y_old) {
  const int64_t tout = (tin - int64_t(s.dil) * (s.k - 1) - 1) / s.stride + 1;
  const std::vector<int8_t> qw = int8_weight_codes(w.data(), w.numel(), ws);
  std::vector<float> y(size_t(tout * s.cout));
  std::vector<float> row(size_t(s.cin) * s.k);
  for (int64_t t = 0; t < tout; ++t) {
    for (int c = 0; c < s.cin; ++c)  // unfold order: c major, k minor
      for (int k = 0; k < s.k; ++k) row[size_t(c) * s.k + k] = x[(t * s.stride + int64_t(k) * s.dil) * s.cin + c];
    float lo = 0.0f, hi = 0.0f;
    for (float v : row) lo = std::min(lo, v), hi = std::max(hi, v);
    const float sc = std::max((hi - lo) / 255.0f, 1e-8f);
    const float inv = 1.0f / sc;
    const float zf = std::clamp(std::nearbyint(-lo * inv), 0.0f, 255.0f);
    const int32_t z = int32_t(zf);
    for (int o = 0; o < s.cout; ++o) {
      int64_t acc = 0, sum = 0;
      for (int c = 0; c < s.cin; ++c)
        for (int k = 0; k < s.k; ++k) {
          const float v = row[size_t(c) * s.k + k];
          const int64_t q = int64_t(std::nearbyint(std::clamp(v * inv, -zf, 255.0f - zf))) + z;
          EXPECT_GE(q, 0);
          EXPECT_LE(q, 255);
          const int64_t wq = qw[(size_t(o) * s.cin + c) * s.k + k];
          acc += q * wq;
          sum += wq;
        }
      volatile float prod = (sc * ws[size_t(o)]) * float(acc - int64_t(z) * sum);  // rounded: no fused multiply-add
      float v = prod + b[o];
      if (y_old) v += (*y_old)[size_t(t * s.cout + o)];
      y[size_t(t * s.cout + o)] = v;
    }
  }
  apply_act(post, y.data(), int64_t(y.size()));
  return y;
}

// y [tout, cout] of the per-group int8 conv (Int8Params::act_group = n), emulated from the definition in nn/layers.h:
// each (input step, group of n channels) its own range and codes, exact int64 sums per group and tap, then the two
// fused multiply-adds per (k, g) in that order and the epilogue (product, then sums).
std::vector<float> emulate_group_conv(const Tensor& x, int64_t tin, const Tensor& w, const Tensor& b, const Shape& s,
                                      int n, const std::vector<float>& ws, Act post, const std::vector<float>* y_old) {
  const int64_t tout = (tin - int64_t(s.dil) * (s.k - 1) - 1) / s.stride + 1;
  const std::vector<int8_t> qw = int8_weight_codes(w.data(), w.numel(), ws);
  const int ng = s.cin / n;
  // codes and (s, z) of every (step, group)
  std::vector<int64_t> q(size_t(tin * s.cin));
  std::vector<float> sc(size_t(tin * ng)), zf(size_t(tin * ng));
  for (int64_t f = 0; f < tin; ++f)
    for (int g = 0; g < ng; ++g) {
      float lo = 0.0f, hi = 0.0f;
      for (int c = g * n; c < g * n + n; ++c) lo = std::min(lo, x[f * s.cin + c]), hi = std::max(hi, x[f * s.cin + c]);
      const float st = std::max((hi - lo) / 255.0f, 1e-8f);
      const float inv = 1.0f / st;
      const float z = std::clamp(std::nearbyint(-lo * inv), 0.0f, 255.0f);
      sc[size_t(f * ng + g)] = st;
      zf[size_t(f * ng + g)] = z;
      for (int c = g * n; c < g * n + n; ++c) {
        const int64_t v = int64_t(std::nearbyint(std::clamp(x[f * s.cin + c] * inv, -z, 255.0f - z))) + int64_t(z);
        EXPECT_GE(v, 0);
        EXPECT_LE(v, 255);
        q[size_t(f * s.cin + c)] = v;
      }
    }
  std::vector<float> y(size_t(tout * s.cout));
  for (int64_t t = 0; t < tout; ++t)
    for (int o = 0; o < s.cout; ++o) {
      float a = 0.0f;
      for (int k = 0; k < s.k; ++k) {
        const int64_t f = t * s.stride + int64_t(k) * s.dil;
        for (int g = 0; g < ng; ++g) {
          int64_t acc = 0, sum = 0;
          for (int c = g * n; c < g * n + n; ++c) {
            const int64_t wq = qw[(size_t(o) * s.cin + c) * s.k + k];
            acc += q[size_t(f * s.cin + c)] * wq;
            sum += wq;
          }
          const float st = sc[size_t(f * ng + g)], z = zf[size_t(f * ng + g)];
          a = std::fma(float(acc), st, a);
          a = std::fma(-(st * z), float(sum), a);
        }
      }
      volatile float prod = ws[size_t(o)] * a;  // rounded: no fused multiply-add
      float v = prod + b[o];
      if (y_old) v += (*y_old)[size_t(t * s.cout + o)];
      y[size_t(t * s.cout + o)] = v;
    }
  apply_act(post, y.data(), int64_t(y.size()));
  return y;
}

// Inputs of a few kinds per row: post-ELU like (>= -1), symmetric, all positive, and runs of exact zeros (a row
// of zeros takes the 1e-8 scale).
Tensor make_input(int64_t tin, int cin, std::mt19937& rng) {
  Tensor x = randn({tin, cin}, rng);
  std::uniform_int_distribution<int> kind(0, 5);
  for (int64_t t = 0; t < tin; ++t) {
    const int kd = kind(rng);
    for (int c = 0; c < cin; ++c) {
      float& v = x[t * cin + c];
      if (kd == 0) v = v > 0 ? v : std::expm1(v);
      else if (kd == 1) v = std::fabs(v) * 3.0f;
      else if (kd == 2) v = 0.0f;
      else if (kd == 3) v *= 0.01f;
    }
  }
  return x;
}

// A long input equals the same input cut in pieces: the outputs [a, a + n) from the inputs they read (stride 1, no
// dilation), with a few odd lengths (new shapes).
void expect_same_in_pieces(const Conv1d& conv, const Tensor& x, int64_t tout, const std::vector<float>& whole) {
  const int cin = conv.in_channels(), cout = conv.out_channels(), k = conv.kernel();
  std::vector<float> yp(whole.size());
  for (int64_t a = 0, n = 1; a < tout; a += n, n = n * 3 + 5) {
    n = std::min(n, tout - a);
    conv.forward(x.data() + a * cin, n + k - 1, yp.data() + a * cout);
  }
  for (size_t i = 0; i < yp.size(); ++i) ASSERT_EQ(yp[i], whole[i]) << i;
}

TEST(ConvToken, MatchesIntegerEmulation) {
  std::mt19937 rng(2024);
  // The last four take the narrow paths (channels / outputs dividing 16: several rows or frames per vector).
  const Shape shapes[] = {{1, 32, 7, 1, 1},  {5, 8, 3, 2, 3},  {13, 16, 1, 1, 1}, {32, 24, 7, 1, 3},
                          {64, 40, 4, 2, 1}, {3, 5, 7, 3, 2},  {17, 9, 2, 4, 1},  {2, 7, 1, 2, 1},
                          {8, 16, 1, 1, 1},  {16, 4, 1, 1, 1}, {4, 8, 3, 1, 2},  {1, 2, 7, 1, 1}};
  int checked = 0;
  for (const Shape& s : shapes)
    for (int mode = 0; mode < 4; ++mode) {
      const bool accumulate = mode & 1;
      const Act post = (mode & 2) ? Act::Elu : Act::None;
      Tensor w = randn({s.cout, s.cin, s.k}, rng, 0.3f);
      Tensor b = randn({s.cout}, rng, 0.5f);
      const std::vector<float> ws = weight_scales(w, s.cout);
      Conv1d conv(w, b, s.stride, s.dil, 1, true, post);
      Int8Params p;
      p.dynamic = true;
      p.weight_scale = ws;
      conv.set_int8(p);
      ASSERT_TRUE(conv.is_token_int8());
      const int64_t tin = 40 + 37 * mode + int64_t(s.dil) * (s.k - 1);
      const Tensor x = make_input(tin, s.cin, rng);
      const int64_t tout = conv.out_len(tin);
      std::vector<float> y_old(size_t(tout * s.cout));
      for (auto& v : y_old) v = std::normal_distribution<float>(0.0f, 2.0f)(rng);
      std::vector<float> y = y_old;
      conv.forward(x.data(), tin, y.data(), accumulate);
      const std::vector<float> want = emulate_token_conv(x, tin, w, b, s, ws, post, accumulate ? &y_old : nullptr);
      // The same float32 operations in the same order: bit for bit (the tolerance reports how far a miss is).
      double worst = 0;
      for (int64_t t = 0; t < tout; ++t)
        for (int o = 0; o < s.cout; ++o) {
          const size_t i = size_t(t * s.cout + o);
          const double mag = std::fabs(want[i]) + std::fabs(b[o]) + (accumulate ? std::fabs(y_old[i]) : 0.0) + 1e-6;
          const double rel = std::fabs(double(y[i]) - want[i]) / mag;
          worst = std::max(worst, rel);
          ASSERT_LE(rel, 1e-6) << "cin " << s.cin << " k " << s.k << " stride " << s.stride << " dil " << s.dil
                               << " mode " << mode << " at t " << t << " o " << o << ": " << y[i] << " vs " << want[i];
        }
      int64_t differ = 0;
      for (size_t i = 0; i < y.size(); ++i) differ += y[i] != want[i];
      EXPECT_EQ(differ, 0) << "cin " << s.cin << " k " << s.k << " mode " << mode << ": worst relative error " << worst;
      ++checked;
    }
  EXPECT_EQ(checked, 48);
}

// Close to the float conv (the quantization error of 8-bit rows), much closer than one static range over a tensor
// whose rows differ in scale by 100x; a long input (several matmul tiles) equals the same input cut in pieces.
TEST(ConvToken, TracksFloatAndIsIndependentOfPieces) {
  std::mt19937 rng(7);
  const int cin = 48, cout = 32, k = 7;
  Tensor w = randn({cout, cin, k}, rng, 0.2f);
  Tensor b = randn({cout}, rng, 0.1f);
  const int64_t tin = 6000;
  Tensor x = randn({tin, cin}, rng);
  for (int64_t t = 0; t < tin; ++t)  // loud and quiet stretches
    for (int c = 0; c < cin; ++c) x[t * cin + c] *= (t / 500) % 2 ? 0.01f : 1.0f;
  Conv1d fl(w, b, 1, 1, 1, true), tok(w, b, 1, 1, 1, true), st(w, b, 1, 1, 1, true);
  Int8Params p;
  p.dynamic = true;
  p.weight_scale = weight_scales(w, cout);
  tok.set_int8(p);
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  Int8Params ps;
  ps.weight_scale = p.weight_scale;
  ps.act_scale = (hi - lo) / 255.0f;
  ps.act_zero = int32_t(std::nearbyint(-lo / ps.act_scale));
  st.set_int8(ps);
  const int64_t tout = fl.out_len(tin);
  std::vector<float> yf(size_t(tout * cout)), yt(yf.size()), ys(yf.size());
  fl.forward(x.data(), tin, yf.data());
  tok.forward(x.data(), tin, yt.data());
  st.forward(x.data(), tin, ys.data());
  double et = 0, es = 0, pw = 0;
  for (int64_t t = 0; t < tout; ++t)
    if ((t / 500) % 2)  // the quiet stretches, where one static range loses most
      for (int o = 0; o < cout; ++o) {
        const size_t i = size_t(t * cout + o);
        et += (yt[i] - yf[i]) * double(yt[i] - yf[i]);
        es += (ys[i] - yf[i]) * double(ys[i] - yf[i]);
        pw += (yf[i] - b[o]) * double(yf[i] - b[o]);
      }
  const double snr_t = 10 * std::log10(pw / et), snr_s = 10 * std::log10(pw / es);
  std::printf("quiet stretches: per-token SNR %.1f dB, static %.1f dB\n", snr_t, snr_s);
  EXPECT_GT(snr_t, 30.0);
  EXPECT_GT(snr_t, snr_s + 20.0);
  expect_same_in_pieces(tok, x, tout, yt);
}

TEST(ConvToken, RefusesWhatItCannotRun) {
  std::mt19937 rng(3);
  Tensor w = randn({4, 3, 3}, rng), b({4});
  Int8Params p;
  p.dynamic = true;
  p.weight_scale = weight_scales(w, 4);
  Conv1d cf(w, b, 1, 1, 1, /*channels_last=*/false);
  cf.set_name("enc.cf");
  try {
    cf.set_int8(p);
    FAIL() << "channels-first accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("channels-last"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("enc.cf"), std::string::npos) << e.what();
  }
  Conv1d cl(w, b, 1, 1, 1, true);
  Int8Params bad = p;
  bad.act_zero = 3;
  EXPECT_THROW(cl.set_int8(bad), Error);
  bad = p;
  bad.in_shift.assign(3, 0.5f);
  EXPECT_THROW(cl.set_int8(bad), Error);
  bad = p;
  bad.weight_scale.pop_back();
  EXPECT_THROW(cl.set_int8(bad), Error);
  EXPECT_FALSE(cl.is_int8());
  Linear lin(randn({4, 3}, rng), Tensor({4}));
  Int8Params pl = p;
  EXPECT_THROW(lin.set_int8(pl), Error);
  cl.set_int8(p);
  EXPECT_TRUE(cl.is_token_int8());
  Int8Params plain = p;  // back to a static range
  plain.dynamic = false;
  cl.set_int8(plain);
  EXPECT_TRUE(cl.is_int8());
  EXPECT_FALSE(cl.is_token_int8());
}

// Both code paths: the VNNI kernel where the CPU has it, and the portable loops (every CPU).
class ConvGroup : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { set_group_conv_portable_for_testing(GetParam()); }
  void TearDown() override { set_group_conv_portable_for_testing(false); }
};
INSTANTIATE_TEST_SUITE_P(Paths, ConvGroup, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? "portable" : "native"; });

TEST_P(ConvGroup, MatchesIntegerEmulation) {
  std::mt19937 rng(2025);
  // group sizes 1 and 2 (padded to a quad), 4, 8 and 16 (the vector code paths), 12 and 24 (several quads, rows that
  // are not a power of two); outputs not a multiple of 16, strides, dilations, long kernels
  struct Case {
    Shape s;
    int n;
  };
  const Case cases[] = {{{1, 16, 7, 1, 1}, 1},   {{16, 8, 3, 1, 1}, 8},  {{8, 16, 1, 1, 1}, 8},
                        {{32, 64, 8, 4, 1}, 8},  {{64, 32, 3, 1, 3}, 8}, {{6, 5, 7, 3, 2}, 2},
                        {{48, 17, 2, 2, 1}, 16}, {{24, 40, 3, 1, 1}, 4}, {{36, 9, 3, 2, 2}, 12},
                        {{48, 33, 1, 1, 1}, 24}, {{128, 20, 4, 2, 1}, 8}, {{3, 7, 5, 1, 1}, 3}};
  int checked = 0;
  for (const Case& cs : cases)
    for (int mode = 0; mode < 4; ++mode) {
      const Shape& s = cs.s;
      const bool accumulate = mode & 1;
      const Act post = (mode & 2) ? Act::Elu : Act::None;
      Tensor w = randn({s.cout, s.cin, s.k}, rng, 0.3f);
      Tensor b = randn({s.cout}, rng, 0.5f);
      const std::vector<float> ws = weight_scales(w, s.cout);
      Conv1d conv(w, b, s.stride, s.dil, 1, true, post);
      Int8Params p;
      p.dynamic = true;
      p.act_group = cs.n;
      p.weight_scale = ws;
      conv.set_int8(p);
      ASSERT_TRUE(conv.is_group_int8());
      ASSERT_FALSE(conv.is_token_int8());
      ASSERT_EQ(conv.act_group(), cs.n);
      // lengths that leave remainders after the blocks of 8 outputs, and one over several tiles
      const int64_t tin = (mode == 3 ? 3000 : 41 + 37 * mode) + int64_t(s.dil) * (s.k - 1);
      const Tensor x = make_input(tin, s.cin, rng);
      const int64_t tout = conv.out_len(tin);
      std::vector<float> y_old(size_t(tout * s.cout));
      for (auto& v : y_old) v = std::normal_distribution<float>(0.0f, 2.0f)(rng);
      std::vector<float> y = y_old;
      conv.forward(x.data(), tin, y.data(), accumulate);
      const std::vector<float> want =
          emulate_group_conv(x, tin, w, b, s, cs.n, ws, post, accumulate ? &y_old : nullptr);
      int64_t differ = 0;
      double worst = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        differ += y[i] != want[i];
        worst = std::max(worst, std::fabs(double(y[i]) - want[i]) / (std::fabs(want[i]) + 1e-6));
      }
      EXPECT_EQ(differ, 0) << "cin " << s.cin << " cout " << s.cout << " k " << s.k << " stride " << s.stride
                           << " dil " << s.dil << " group " << cs.n << " mode " << mode << ": worst relative error "
                           << worst;
      ++checked;
    }
  EXPECT_EQ(checked, 48);
}

// Finer ranges than a whole im2col row: closer to the float conv where channels differ in scale, and a long input
// equals the same input cut in pieces.
TEST_P(ConvGroup, TracksFloatBetterThanTokenAndIsIndependentOfPieces) {
  std::mt19937 rng(11);
  const int cin = 64, cout = 48, k = 3;
  Tensor w = randn({cout, cin, k}, rng, 0.2f);
  Tensor b = randn({cout}, rng, 0.1f);
  const int64_t tin = 5000;
  Tensor x = randn({tin, cin}, rng);
  // channel groups of very different loudness, and an output that reads only the quiet ones: one range per im2col
  // row (set by the loud groups) crushes them, a range per group does not
  for (int64_t t = 0; t < tin; ++t)
    for (int c = 0; c < cin; ++c) x[t * cin + c] *= (c / 8) % 2 ? 0.02f : 1.0f;
  for (int o = 0; o < cout; ++o)
    for (int c = 0; c < cin; c += 1)
      for (int j = 0; j < k; ++j) w[(int64_t(o) * cin + c) * k + j] *= (c / 8) % 2 ? 1.0f : 0.0f;
  Conv1d fl(w, b, 1, 1, 1, true), tok(w, b, 1, 1, 1, true), grp(w, b, 1, 1, 1, true);
  Int8Params p;
  p.dynamic = true;
  p.weight_scale = weight_scales(w, cout);
  tok.set_int8(p);
  p.act_group = 8;
  grp.set_int8(p);
  const int64_t tout = fl.out_len(tin);
  std::vector<float> yf(size_t(tout * cout)), yt(yf.size()), yg(yf.size());
  fl.forward(x.data(), tin, yf.data());
  tok.forward(x.data(), tin, yt.data());
  grp.forward(x.data(), tin, yg.data());
  double et = 0, eg = 0, pw = 0;
  for (int64_t t = 0; t < tout; ++t)
    for (int o = 0; o < cout; ++o) {
      const size_t i = size_t(t * cout + o);
      et += (yt[i] - yf[i]) * double(yt[i] - yf[i]);
      eg += (yg[i] - yf[i]) * double(yg[i] - yf[i]);
      pw += (yf[i] - b[o]) * double(yf[i] - b[o]);
    }
  const double snr_t = 10 * std::log10(pw / et), snr_g = 10 * std::log10(pw / eg);
  std::printf("per-token SNR %.1f dB, per step and group of 8: %.1f dB\n", snr_t, snr_g);
  EXPECT_GT(snr_g, 35.0);
  EXPECT_GT(snr_g, snr_t + 20.0);
  expect_same_in_pieces(grp, x, tout, yg);
}

TEST(ConvGroupSetup, RefusesWhatItCannotRun) {
  std::mt19937 rng(5);
  Tensor w = randn({4, 12, 3}, rng), b({4});
  Int8Params p;
  p.dynamic = true;
  p.act_group = 8;  // does not divide 12
  p.weight_scale = weight_scales(w, 4);
  Conv1d cl(w, b, 1, 1, 1, true);
  cl.set_name("enc.g");
  try {
    cl.set_int8(p);
    FAIL() << "a group of 8 accepted on 12 channels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("enc.g"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("12"), std::string::npos) << e.what();
  }
  for (int bad : {-1, 13, 5}) {
    p.act_group = bad;
    EXPECT_THROW(cl.set_int8(p), Error) << bad;
  }
  p.act_group = 4;
  p.dynamic = false;  // a group without per-token ranges
  EXPECT_THROW(cl.set_int8(p), Error);
  EXPECT_FALSE(cl.is_int8());
  p.dynamic = true;
  Conv1d cf(w, b, 1, 1, 1, /*channels_last=*/false);
  EXPECT_THROW(cf.set_int8(p), Error);
  cl.set_int8(p);
  EXPECT_TRUE(cl.is_group_int8());
  p.act_group = 0;  // back to per-token
  cl.set_int8(p);
  EXPECT_TRUE(cl.is_token_int8());
  EXPECT_FALSE(cl.is_group_int8());
  EXPECT_EQ(cl.act_group(), 0);
}

}  // namespace
}  // namespace wavtok
