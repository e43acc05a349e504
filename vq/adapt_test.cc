#include "vq/adapt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"

namespace wavtok {
namespace {

// Brute-force nearest centroid in double: the independent truth for the assignments.
int nearest(const Tensor& book, const std::vector<float>& x, int64_t n, int64_t i) {
  const int64_t K = book.dim(0), D = book.dim(1);
  int best = 0;
  double best_d = 1e300;
  for (int64_t k = 0; k < K; ++k) {
    double d2 = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double t = double(x[size_t(d * n + i)]) - book[k * D + d];
      d2 += t * t;
    }
    if (d2 < best_d) {
      best_d = d2;
      best = int(k);
    }
  }
  return best;
}

double mse(const Tensor& book, const std::vector<float>& x, int64_t n) {
  const int64_t D = book.dim(1);
  double se = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int k = nearest(book, x, n, i);
    for (int64_t d = 0; d < D; ++d) {
      const double t = double(x[size_t(d * n + i)]) - book[k * D + d];
      se += t * t;
    }
  }
  return se / double(n * D);
}

Tensor random_book(int64_t K, int64_t D, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  Tensor b({K, D});
  for (int64_t i = 0; i < b.numel(); ++i) b[i] = g(rng);
  return b;
}

// Vectors drawn around the codewords of `book` (noise sigma), then drifted: every vector rotated in the plane of
// channels 0 and 1 by `angle` and shifted by `shift` along every channel. Channels-first [D, n].
std::vector<float> drifted(const Tensor& book, int64_t n, float sigma, float angle, float shift, uint32_t seed) {
  const int64_t K = book.dim(0), D = book.dim(1);
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, sigma);
  std::uniform_int_distribution<int64_t> pick(0, K - 1);
  std::vector<float> x(size_t(D * n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = pick(rng);
    std::vector<float> v(static_cast<size_t>(D));
    for (int64_t d = 0; d < D; ++d) v[size_t(d)] = book[k * D + d] + g(rng);
    const float a = v[0], b = v[1];
    v[0] = std::cos(angle) * a - std::sin(angle) * b;
    v[1] = std::sin(angle) * a + std::cos(angle) * b;
    for (int64_t d = 0; d < D; ++d) x[size_t(d * n + i)] = v[size_t(d)] + shift;
  }
  return x;
}

double half_nn(const Tensor& book, int64_t k) {
  const int64_t K = book.dim(0), D = book.dim(1);
  double best = 1e300;
  for (int64_t j = 0; j < K; ++j) {
    if (j == k) continue;
    double d2 = 0;
    for (int64_t d = 0; d < D; ++d) d2 += std::pow(double(book[k * D + d]) - book[j * D + d], 2);
    best = std::min(best, 0.5 * std::sqrt(d2));
  }
  return best;
}

TEST(CodebookAdapt, OneStepWithoutAnchorIsTheMeanOfTheAssignedVectors) {
  const Tensor old = random_book(16, 4, 1);
  const int64_t n = 300;
  const std::vector<float> x = drifted(old, n, 0.3f, 0.2f, 0.4f, 2);
  CodebookAdaptOptions o;
  o.iterations = 1;
  o.anchor = 0;
  o.radius = std::numeric_limits<double>::infinity();
  CodebookAdaptStats st;
  const Tensor got = adapt_codebook(old, x.data(), n, o, &st);
  std::vector<double> sum(16 * 4, 0.0);
  std::vector<int> cnt(16, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int k = nearest(old, x, n, i);
    ++cnt[size_t(k)];
    for (int d = 0; d < 4; ++d) sum[size_t(k * 4 + d)] += x[size_t(d * n + i)];
  }
  int used = 0;
  for (int k = 0; k < 16; ++k) {
    used += cnt[size_t(k)] > 0;
    for (int d = 0; d < 4; ++d) {
      const double want = cnt[size_t(k)] ? sum[size_t(k * 4 + d)] / cnt[size_t(k)] : old[k * 4 + d];
      EXPECT_NEAR(got[k * 4 + d], want, 1e-5) << "code " << k << " channel " << d;
    }
  }
  EXPECT_EQ(st.codes_used, used);
  EXPECT_EQ(st.codes_capped, 0);
  EXPECT_NEAR(st.mse_before, mse(old, x, n), 1e-5 * st.mse_before);
  EXPECT_NEAR(st.mse_after, mse(got, x, n), 1e-5 * st.mse_after);
}

TEST(CodebookAdapt, AnchorIsAPriorWeightInVectors) {
  const Tensor old = random_book(8, 3, 3);
  const int64_t n = 200;
  const std::vector<float> x = drifted(old, n, 0.2f, 0.0f, 0.5f, 4);
  CodebookAdaptOptions o;
  o.iterations = 1;
  o.anchor = 5;
  o.radius = std::numeric_limits<double>::infinity();
  const Tensor got = adapt_codebook(old, x.data(), n, o);
  std::vector<double> sum(8 * 3, 0.0);
  std::vector<int> cnt(8, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int k = nearest(old, x, n, i);
    ++cnt[size_t(k)];
    for (int d = 0; d < 3; ++d) sum[size_t(k * 3 + d)] += x[size_t(d * n + i)];
  }
  for (int k = 0; k < 8; ++k)
    for (int d = 0; d < 3; ++d)
      EXPECT_NEAR(got[k * 3 + d], (sum[size_t(k * 3 + d)] + 5.0 * old[k * 3 + d]) / (cnt[size_t(k)] + 5.0), 1e-5);
}

TEST(CodebookAdapt, RadiusKeepsEveryCodeInsideItsOldCell) {
  const Tensor old = random_book(32, 6, 5);
  const int64_t n = 2000;
  const std::vector<float> x = drifted(old, n, 0.3f, 0.5f, 1.5f, 6);  // a drift larger than the code spacing
  for (MoveLimit limit : {MoveLimit::Ball, MoveLimit::Cell})
    for (double radius : {0.0, 0.5, 0.9}) {
      CodebookAdaptOptions o;
      o.iterations = 8;
      o.anchor = 0;
      o.radius = radius;
      o.limit = limit;
      CodebookAdaptStats st;
      const Tensor got = adapt_codebook(old, x.data(), n, o, &st);
      EXPECT_GT(st.codes_capped, 0) << radius;
      double max_rel = 0;
      for (int64_t k = 0; k < 32; ++k) {
        double d2 = 0;
        for (int d = 0; d < 6; ++d) d2 += std::pow(double(got[k * 6 + d]) - old[k * 6 + d], 2);
        const double rel = std::sqrt(d2) / half_nn(old, k);
        max_rel = std::max(max_rel, rel);
        if (limit == MoveLimit::Ball)
          EXPECT_LE(rel, radius * (1 + 1e-5) + 1e-6) << "code " << k << " radius " << radius;
        // The moved centroid is still coded as itself by the old codebook: stored tokens keep their meaning.
        std::vector<float> c(6);
        for (int d = 0; d < 6; ++d) c[size_t(d)] = got[k * 6 + d];
        EXPECT_EQ(nearest(old, c, 1, 0), k) << "code " << k << " radius " << radius;
      }
      if (radius == 0) EXPECT_EQ(max_rel, 0.0);
      // A cell reaches further than its inscribed ball where the neighbours are not in the way.
      if (limit == MoveLimit::Cell && radius == 0.9) EXPECT_GT(max_rel, 0.9);
      EXPECT_NEAR(st.max_move, max_rel, 1e-4 * (1 + max_rel));
    }
}

TEST(CodebookAdapt, SyntheticDriftLowersHeldOutErrorByAFifth) {
  // Latents of a shifted and rotated distribution: adapted on one sample, measured on another of the same drift.
  const Tensor old = random_book(64, 8, 7);
  const std::vector<float> train = drifted(old, 4000, 0.35f, 0.25f, 0.3f, 8);
  const std::vector<float> held = drifted(old, 2000, 0.35f, 0.25f, 0.3f, 9);
  CodebookAdaptOptions o;  // the defaults of `wavtok adapt`
  CodebookAdaptStats st;
  int steps_seen = 0;
  o.on_step = [&](int step, double) { steps_seen = step; };
  const Tensor got = adapt_codebook(old, train.data(), 4000, o, &st);
  EXPECT_EQ(steps_seen, st.steps);
  EXPECT_GT(st.steps, 0);
  const double before = mse(old, held, 2000), after = mse(got, held, 2000);
  EXPECT_LT(after, 0.8 * before) << before << " -> " << after;
  EXPECT_LT(st.mse_after, 0.8 * st.mse_before);
  EXPECT_NEAR(codebook_mse(got, held.data(), 2000), after, 1e-5 * after);
}

TEST(CodebookAdapt, ZeroIterationsOrNoRadiusChangeNothing) {
  const Tensor old = random_book(8, 4, 10);
  const std::vector<float> x = drifted(old, 100, 0.3f, 0.3f, 0.5f, 11);
  CodebookAdaptOptions o;
  o.iterations = 0;
  Tensor got = adapt_codebook(old, x.data(), 100, o);
  for (int64_t i = 0; i < old.numel(); ++i) EXPECT_EQ(got[i], old[i]);
  o.iterations = 5;
  o.radius = 0;
  got = adapt_codebook(old, x.data(), 100, o);
  for (int64_t i = 0; i < old.numel(); ++i) EXPECT_EQ(got[i], old[i]);
}

TEST(CodebookAdapt, BadInputIsRefused) {
  const Tensor old = random_book(8, 4, 12);
  std::vector<float> x = drifted(old, 50, 0.3f, 0.0f, 0.0f, 13);
  CodebookAdaptOptions o;
  EXPECT_THROW(adapt_codebook(old, x.data(), 0, o), Error);
  x[17] = std::numeric_limits<float>::quiet_NaN();
  try {
    adapt_codebook(old, x.data(), 50, o);
    FAIL() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
  }
  x[17] = 0;
  o.anchor = -1;
  EXPECT_THROW(adapt_codebook(old, x.data(), 50, o), Error);
  o.anchor = 1;
  o.radius = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(adapt_codebook(old, x.data(), 50, o), Error);
  EXPECT_THROW(adapt_codebook(Tensor({8}), x.data(), 50, CodebookAdaptOptions{}), Error);
}

}  // namespace
}  // namespace wavtok
