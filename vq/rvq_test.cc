// Residual VQ search against a float64 check of its definition: at every level the chosen code is the nearest
// codeword to the residual left by the levels before it, and `quantized` is the sum of the chosen codewords.
#include "vq/rvq.h"

#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

namespace wavtok {
namespace {

TEST(ResidualVQ, NearestCodeAtEveryLevelAcrossSearchBlocks) {
  const int dim = 8, nq = 3, bins = 64;
  const int64_t frames = 1300;  // several search blocks and a remainder
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<Tensor> books;
  for (int q = 0; q < nq; ++q) {
    Tensor b({bins, dim});
    for (int64_t i = 0; i < b.numel(); ++i) b[i] = nd(rng) / float(q + 1);
    books.push_back(std::move(b));
  }
  ResidualVQ vq(books);
  Tensor lat({dim, frames});
  for (int64_t i = 0; i < lat.numel(); ++i) lat[i] = nd(rng);
  std::vector<int32_t> codes(size_t(nq) * frames);
  std::vector<float> quant(size_t(dim) * frames);
  vq.encode(lat.data(), frames, nq, codes.data(), quant.data());

  double worst_excess = 0, worst_sum = 0;
  for (int64_t f = 0; f < frames; ++f) {
    std::vector<double> r(dim), sum(dim, 0.0);
    for (int d = 0; d < dim; ++d) r[d] = lat[d * frames + f];
    for (int q = 0; q < nq; ++q) {
      auto dist = [&](int c) {
        double s = 0;
        for (int d = 0; d < dim; ++d)
          s += (r[d] - books[q][int64_t(c) * dim + d]) * (r[d] - books[q][int64_t(c) * dim + d]);
        return s;
      };
      double best = std::numeric_limits<double>::max();
      for (int c = 0; c < bins; ++c) best = std::min(best, dist(c));
      const int32_t got = codes[size_t(q) * frames + f];
      ASSERT_GE(got, 0);
      ASSERT_LT(got, bins);
      worst_excess = std::max(worst_excess, (dist(got) - best) / (1e-12 + best));
      for (int d = 0; d < dim; ++d) {
        r[d] -= books[q][int64_t(got) * dim + d];
        sum[d] += books[q][int64_t(got) * dim + d];
      }
    }
    for (int d = 0; d < dim; ++d) worst_sum = std::max(worst_sum, std::abs(sum[d] - quant[d * frames + f]));
  }
  EXPECT_LT(worst_excess, 1e-4);  // float32 scores: only a near-tie could pick a (barely) farther code
  EXPECT_LT(worst_sum, 1e-5);

  // A prefix of the frames on its own gives the same codes: blocks do not interact.
  const int64_t part = 700;
  Tensor head({dim, part});
  for (int d = 0; d < dim; ++d)
    for (int64_t f = 0; f < part; ++f) head[d * part + f] = lat[d * frames + f];
  std::vector<int32_t> hc(size_t(nq) * part);
  vq.encode(head.data(), part, nq, hc.data());
  for (int q = 0; q < nq; ++q)
    for (int64_t f = 0; f < part; ++f)
      ASSERT_EQ(hc[size_t(q) * part + f], codes[size_t(q) * frames + f]) << q << "," << f;
}

}  // namespace
}  // namespace wavtok
