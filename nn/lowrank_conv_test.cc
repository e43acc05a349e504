// Conv1d with a low-rank float adapter (RILQ on convolutions, docs/PTQ.md "Low-rank adapters"):
// y = post(conv(x) + b + B (A * x) [+ y]) with A [r, Cin, K] (the layer's stride and dilation) and B [Cout, r],
// against a float64 evaluation of that formula: float layers in both layouts, with ELU and accumulate, inputs long
// enough for the tiled path (overlapping last tile), the float64-accumulating path; int8 layers (the adapter's term
// is exactly what it adds, before the ELU); bad adapters refused.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/settings.h"
#include "nn/layers.h"
#include "tests/testing/layer_testing.h"

namespace wavtok {
namespace {

using wavtok::testing::randn;

struct Case {
  int cin, cout, k, stride, dil;
  bool channels_last;
  int64_t tin;
};

// x at (time t, channel c) in either layout.
double at(const Tensor& x, const Case& p, int64_t tin, int64_t t, int c) {
  return p.channels_last ? x[t * p.cin + c] : x[int64_t(c) * tin + t];
}

// Output index of (time t, channel o).
int64_t out_idx(const Case& p, int64_t tout, int64_t t, int o) {
  return p.channels_last ? t * p.cout + o : int64_t(o) * tout + t;
}

// conv(x) + b + B (A * x) in float64, laid out like the layer's output.
std::vector<double> conv_lowrank_ref(const Case& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                                     const Tensor* a, const Tensor* b, int64_t tout) {
  const int r = a ? int(a->dim(0)) : 0;
  std::vector<double> y(static_cast<size_t>(tout * p.cout), 0.0);
  std::vector<double> u(static_cast<size_t>(r), 0.0);
  for (int64_t t = 0; t < tout; ++t) {
    for (int j = 0; j < r; ++j) {
      double s = 0;
      for (int c = 0; c < p.cin; ++c)
        for (int k = 0; k < p.k; ++k) s += double((*a)[(int64_t(j) * p.cin + c) * p.k + k]) * at(x, p, p.tin, t * p.stride + int64_t(k) * p.dil, c);
      u[size_t(j)] = s;
    }
    for (int o = 0; o < p.cout; ++o) {
      double s = bias[o];
      for (int c = 0; c < p.cin; ++c)
        for (int k = 0; k < p.k; ++k)
          s += double(w[(int64_t(o) * p.cin + c) * p.k + k]) * at(x, p, p.tin, t * p.stride + int64_t(k) * p.dil, c);
      for (int j = 0; j < r; ++j) s += double((*b)[int64_t(o) * r + j]) * u[size_t(j)];
      y[size_t(out_idx(p, tout, t, o))] = s;
    }
  }
  return y;
}

double elu(double v) { return v < 0 ? std::expm1(v) : v; }

TEST(LowRankConv, FloatConvEqualsFormula) {
  std::mt19937 rng(17);
  // {cin, cout, k, stride, dilation, channels_last, tin}: the first is long enough for the tiled path (tiles of
  // 512 output frames for these sizes, the last one overlapping the one before), the others short or strided.
  for (const Case& p : {Case{64, 48, 7, 1, 1, true, 1500}, Case{24, 20, 3, 2, 2, false, 201},
                        Case{32, 40, 3, 1, 3, true, 77}}) {
    const int r = 5;
    const Tensor w = randn({p.cout, p.cin, p.k}, rng, 0.1f), bias = randn({p.cout}, rng);
    const Tensor x = randn(p.channels_last ? std::vector<int64_t>{p.tin, p.cin} : std::vector<int64_t>{p.cin, p.tin},
                           rng);
    const Tensor a = randn({r, p.cin, p.k}, rng, 0.1f), b = randn({p.cout, r}, rng, 0.3f);
    Conv1d probe(w, bias, p.stride, p.dil, 1, p.channels_last);
    const int64_t tout = probe.out_len(p.tin);
    const Tensor y0 = randn({tout * p.cout}, rng);
    const std::vector<double> ref = conv_lowrank_ref(p, x, w, bias, &a, &b, tout);
    const std::vector<double> ref0 = conv_lowrank_ref(p, x, w, bias, nullptr, nullptr, tout);
    double dmax = 0;
    for (size_t i = 0; i < ref.size(); ++i) dmax = std::max(dmax, std::abs(ref[i] - ref0[i]));
    EXPECT_GT(dmax, 0.5);  // the adapter's term is far above the tolerance: leaving it out would fail
    for (Act act : {Act::None, Act::Elu})
      for (bool acc : {false, true}) {
        Conv1d conv(w, bias, p.stride, p.dil, 1, p.channels_last, act);
        conv.set_name("blk.conv");
        conv.set_lowrank(a, b);
        ASSERT_TRUE(conv.has_lowrank());
        EXPECT_EQ(conv.lowrank_rank(), r);
        for (int rep = 0; rep < 2; ++rep) {  // the second call runs on the cached primitives
          Tensor y = y0;
          conv.forward(x.data(), p.tin, y.data(), acc);
          double worst = 0;
          for (int64_t i = 0; i < tout * p.cout; ++i) {
            const double z = ref[size_t(i)] + (acc ? double(y0[i]) : 0.0);
            worst = std::max(worst, std::abs((act == Act::Elu ? elu(z) : z) - y[i]));
          }
          EXPECT_LT(worst, 5e-5) << "cin " << p.cin << " k " << p.k << " tin " << p.tin << " elu "
                                 << (act == Act::Elu) << " accumulate " << acc;
        }
      }
  }
}

// Precision::F64 (the float64-accumulating path of channels-last float convs) adds the adapter too.
TEST(LowRankConv, F64PathAddsAdapter) {
  std::mt19937 rng(23);
  const Case p{48, 32, 7, 2, 1, true, 301};
  const int r = 3;
  const Tensor w = randn({p.cout, p.cin, p.k}, rng, 0.1f), bias = randn({p.cout}, rng), x = randn({p.tin, p.cin}, rng);
  const Tensor a = randn({r, p.cin, p.k}, rng, 0.1f), b = randn({p.cout, r}, rng, 0.3f);
  Conv1d conv(w, bias, p.stride, p.dil, 1, true, Act::Elu);
  conv.allow_f64(true);
  conv.set_lowrank(a, b);
  const int64_t tout = conv.out_len(p.tin);
  const std::vector<double> ref = conv_lowrank_ref(p, x, w, bias, &a, &b, tout);
  const Tensor y0 = randn({tout, p.cout}, rng);
  set_precision(Precision::F64);
  Tensor y = y0;
  conv.forward(x.data(), p.tin, y.data(), true);
  set_precision(Precision::F32);
  double worst = 0;
  for (int64_t i = 0; i < tout * p.cout; ++i) worst = std::max(worst, std::abs(elu(ref[size_t(i)] + y0[i]) - y[i]));
  EXPECT_LT(worst, 5e-6);
}

// The int8 layer with an adapter, in both layouts and past the int8 path's 4096-frame pieces: (int8 layer with
// adapter) - (int8 layer without) is the float adapter term, and the ELU comes after the sum.
TEST(LowRankConv, Int8ConvAddsFloatTerm) {
  std::mt19937 rng(29);
  for (const Case& p : {Case{32, 24, 3, 1, 1, true, 4300}, Case{16, 20, 7, 1, 2, false, 150}, Case{64, 128, 7, 1, 1, true, 306}}) {
    const int r = p.cout == 128 ? 4 : 8;
    const Tensor w = randn({p.cout, p.cin, p.k}, rng, 0.1f), bias = randn({p.cout}, rng);
    const Tensor x = randn({p.tin * p.cin}, rng);
    const Tensor a = randn({r, p.cin, p.k}, rng, 0.1f), b = randn({p.cout, r}, rng, 0.3f);
    Int8Params q;
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < x.numel(); ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    q.act_scale = (hi - lo) / 255.0f;
    q.act_zero = int32_t(std::nearbyint(-lo / q.act_scale));
    q.weight_scale = wavtok::testing::weight_scales(w, p.cout);
    const Tensor zero_bias({p.cout});
    Conv1d probe(w, bias, p.stride, p.dil, 1, p.channels_last);
    const int64_t tout = probe.out_len(p.tin);
    // delta alone: the formula with a zero main weight and bias
    const std::vector<double> d = conv_lowrank_ref(p, x, Tensor({p.cout, p.cin, p.k}), zero_bias, &a, &b, tout);
    const Tensor y0 = randn({tout * p.cout}, rng);
    for (bool acc : {false, true}) {
      Conv1d plain(w, bias, p.stride, p.dil, 1, p.channels_last), adapted(w, bias, p.stride, p.dil, 1, p.channels_last);
      plain.set_int8(q);
      adapted.set_int8(q);
      adapted.set_lowrank(a, b);
      Tensor yp = y0, ya = y0;
      plain.forward(x.data(), p.tin, yp.data(), acc);
      adapted.forward(x.data(), p.tin, ya.data(), acc);
      double worst = 0, dmax = 0;
      for (int64_t i = 0; i < tout * p.cout; ++i) {
        worst = std::max(worst, std::abs(double(ya[i]) - yp[i] - d[size_t(i)]));
        dmax = std::max(dmax, std::abs(d[size_t(i)]));
      }
      EXPECT_LT(worst, 2e-5) << "tin " << p.tin << " accumulate " << acc;
      EXPECT_GT(dmax, 0.5);
    }
    Conv1d plain(w, bias, p.stride, p.dil, 1, p.channels_last),
        adapted(w, bias, p.stride, p.dil, 1, p.channels_last, Act::Elu);
    plain.set_int8(q);
    adapted.set_int8(q);
    adapted.set_lowrank(a, b);
    Tensor yp({tout * p.cout}), ya({tout * p.cout});
    plain.forward(x.data(), p.tin, yp.data());
    adapted.forward(x.data(), p.tin, ya.data());
    double worst = 0;
    for (int64_t i = 0; i < tout * p.cout; ++i)
      worst = std::max(worst, std::abs(elu(double(yp[i]) + d[size_t(i)]) - ya[i]));
    EXPECT_LT(worst, 2e-5) << "tin " << p.tin << " elu";
  }
}

TEST(LowRankConv, RefusesBadAdapters) {
  std::mt19937 rng(3);
  Conv1d conv(randn({8, 12, 3}, rng), randn({8}, rng), 1, 1, 1, true);
  conv.set_name("blk.conv1");
  auto refused = [&](Conv1d& c, const Tensor& a, const Tensor& b, const std::string& what) {
    try {
      c.set_lowrank(a, b);
      ADD_FAILURE() << what << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.name()), std::string::npos) << e.what();
    }
    EXPECT_FALSE(c.has_lowrank());
  };
  refused(conv, randn({2, 12}, rng), randn({8, 2}, rng), "do not fit");        // a Linear's [r, Cin]
  refused(conv, randn({2, 12, 1}, rng), randn({8, 2}, rng), "do not fit");     // K != the layer's
  refused(conv, randn({2, 11, 3}, rng), randn({8, 2}, rng), "do not fit");     // Cin
  refused(conv, randn({2, 12, 3}, rng), randn({7, 2}, rng), "do not fit");     // Cout
  refused(conv, randn({2, 12, 3}, rng), randn({8, 3}, rng), "do not fit");     // ranks differ
  refused(conv, randn({2, 12, 3}, rng), randn({8, 2, 1}, rng), "do not fit");  // B as a 1x1 conv weight
  refused(conv, Tensor({0, 12, 3}), Tensor({8, 0}), "rank 0");
  refused(conv, randn({Conv1d::kMaxAdapterRank + 1, 12, 3}, rng), randn({8, Conv1d::kMaxAdapterRank + 1}, rng),
          "rank 65");
  Tensor bad = randn({8, 2}, rng);
  bad[7] = std::numeric_limits<float>::infinity();
  refused(conv, randn({2, 12, 3}, rng), bad, "non-finite");
  Conv1d dw(randn({12, 1, 7}, rng), randn({12}, rng), 1, 1, 12, true);  // depthwise
  dw.set_name("blk.dwconv");
  refused(dw, randn({2, 12, 7}, rng), randn({12, 2}, rng), "groups == 1");
}

}  // namespace
}  // namespace wavtok
