// Linear with a low-rank float adapter (RILQ, docs/PTQ.md "Low-rank adapters"): y = post(x W^T + b + (x A^T) B^T
// [+ y]), against a float64 evaluation of that formula, for the float and the int8 layer, and bad adapters refused.
#include <cmath>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "nn/layers.h"
#include "tests/testing/layer_testing.h"

namespace wavtok {
namespace {

using wavtok::testing::gelu;
using wavtok::testing::randn;

// delta[t][o] = sum_j B[o][j] sum_c A[j][c] x[t][c], float64.
std::vector<double> lowrank_delta(const Tensor& x, const Tensor& a, const Tensor& b, int64_t rows) {
  const int64_t r = a.dim(0), cin = a.dim(1), cout = b.dim(0);
  std::vector<double> d(size_t(rows * cout), 0.0);
  for (int64_t t = 0; t < rows; ++t) {
    std::vector<double> u(size_t(r), 0.0);
    for (int64_t j = 0; j < r; ++j)
      for (int64_t c = 0; c < cin; ++c) u[j] += double(a[j * cin + c]) * x[t * cin + c];
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t j = 0; j < r; ++j) d[t * cout + o] += double(b[o * r + j]) * u[j];
  }
  return d;
}

TEST(LowRank, FloatLinearEqualsFormula) {
  std::mt19937 rng(7);
  const int cin = 48, cout = 40, r = 6;
  const int64_t rows = 37;
  const Tensor w = randn({cout, cin}, rng, 0.2f), bias = randn({cout}, rng), x = randn({rows, cin}, rng);
  const Tensor a = randn({r, cin}, rng, 0.3f), b = randn({cout, r}, rng, 0.3f), y0 = randn({rows, cout}, rng);
  const std::vector<double> d = lowrank_delta(x, a, b, rows);
  for (bool acc : {false, true}) {
    Linear lin(w, bias, Act::Gelu);
    lin.set_lowrank(a, b);
    EXPECT_TRUE(lin.has_lowrank());
    EXPECT_EQ(lin.lowrank_rank(), r);
    Tensor y = y0;
    lin.forward(x.data(), rows, y.data(), acc);
    double worst = 0, dmax = 0;
    for (int64_t t = 0; t < rows; ++t)
      for (int o = 0; o < cout; ++o) {
        double z = bias[o] + d[t * cout + o] + (acc ? double(y0[t * cout + o]) : 0.0);
        for (int c = 0; c < cin; ++c) z += double(w[o * cin + c]) * x[t * cin + c];
        worst = std::max(worst, std::abs(gelu(z) - y[t * cout + o]));
        dmax = std::max(dmax, std::abs(d[t * cout + o]));
      }
    EXPECT_LT(worst, 2e-5) << "accumulate " << acc;
    EXPECT_GT(dmax, 0.5);  // the adapter's term is far above the tolerance, so leaving it out would fail
  }
}

// The int8 layer with an adapter: the adapter's term is added to the dequantized int8 output before the
// post-op, so (int8 layer with adapter) - (int8 layer without) is exactly the float low-rank term.
TEST(LowRank, Int8LinearAddsFloatTerm) {
  std::mt19937 rng(11);
  const int cin = 64, cout = 32, r = 16;
  const int64_t rows = 50;
  const Tensor w = randn({cout, cin}, rng, 0.1f), bias = randn({cout}, rng), x = randn({rows, cin}, rng);
  const Tensor a = randn({r, cin}, rng, 0.2f), b = randn({cout, r}, rng, 0.2f), y0 = randn({rows, cout}, rng);
  Int8Params p;
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  p.act_scale = (hi - lo) / 255.0f;
  p.act_zero = int32_t(std::nearbyint(-lo / p.act_scale));
  for (int o = 0; o < cout; ++o) {
    float m = 0;
    for (int c = 0; c < cin; ++c) m = std::max(m, std::abs(w[o * cin + c]));
    p.weight_scale.push_back(m / 127.0f);
  }
  const std::vector<double> d = lowrank_delta(x, a, b, rows);
  for (bool acc : {false, true}) {
    Linear plain(w, bias), adapted(w, bias);
    plain.set_int8(p);
    adapted.set_int8(p);
    adapted.set_lowrank(a, b);
    Tensor yp = y0, ya = y0;
    plain.forward(x.data(), rows, yp.data(), acc);
    adapted.forward(x.data(), rows, ya.data(), acc);
    double worst = 0;
    for (int64_t i = 0; i < rows * cout; ++i) worst = std::max(worst, std::abs(double(ya[i]) - yp[i] - d[i]));
    EXPECT_LT(worst, 2e-5) << "accumulate " << acc;
  }
  // GELU after the sum: gelu(int8 + delta), not gelu(int8) + delta.
  Linear plain(w, bias), adapted(w, bias, Act::Gelu);
  plain.set_int8(p);
  adapted.set_int8(p);
  adapted.set_lowrank(a, b);
  Tensor yp({rows, cout}), ya({rows, cout});
  plain.forward(x.data(), rows, yp.data());
  adapted.forward(x.data(), rows, ya.data());
  double worst = 0;
  for (int64_t i = 0; i < rows * cout; ++i) worst = std::max(worst, std::abs(gelu(double(yp[i]) + d[i]) - ya[i]));
  EXPECT_LT(worst, 2e-5);
}

TEST(LowRank, RefusesBadAdapters) {
  std::mt19937 rng(3);
  Linear lin(randn({8, 12}, rng), randn({8}, rng));
  lin.set_name("blk.pw");
  auto refused = [&](const Tensor& a, const Tensor& b, const std::string& what) {
    try {
      lin.set_lowrank(a, b);
      ADD_FAILURE() << what << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("blk.pw"), std::string::npos) << e.what();
    }
  };
  refused(randn({2, 11}, rng), randn({8, 2}, rng), "do not fit");  // A's width != Cin
  refused(randn({2, 12}, rng), randn({7, 2}, rng), "do not fit");  // B's height != Cout
  refused(randn({2, 12}, rng), randn({8, 3}, rng), "do not fit");  // ranks differ
  refused(randn({2, 12, 1}, rng), randn({8, 2}, rng), "do not fit");
  refused(Tensor({0, 12}), Tensor({8, 0}), "rank 0");
  refused(randn({Linear::kMaxAdapterRank + 1, 12}, rng), randn({8, Linear::kMaxAdapterRank + 1}, rng), "rank 65");
  Tensor bad = randn({2, 12}, rng);
  bad[5] = std::nanf("");
  refused(bad, randn({8, 2}, rng), "non-finite");
  EXPECT_FALSE(lin.has_lowrank());
}

}  // namespace
}  // namespace wavtok
