#include "vq/adapt.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "vq/rvq.h"

namespace wavtok {
namespace {

void check_inputs(const Tensor& codebook, const float* data, int64_t n) {
  if (codebook.ndim() != 2 || codebook.dim(0) < 1 || codebook.dim(1) < 1)
    throw Error("codebook adaptation: codebook has shape " + shape_str(codebook.shape()) + ", expected [bins, dim]");
  if (n < 1 || !data) throw Error("codebook adaptation: no data vectors");
  const int64_t total = n * codebook.dim(1);
  for (int64_t i = 0; i < total; ++i)
    if (!std::isfinite(data[i]))
      throw Error("codebook adaptation: data value " + std::to_string(i) + " (channel " + std::to_string(i / n) +
                  ", vector " + std::to_string(i % n) + ") is not finite");
  for (int64_t i = 0; i < codebook.numel(); ++i)
    if (!std::isfinite(codebook[i])) throw Error("codebook adaptation: the codebook holds a non-finite value");
}

// Nearest centroid of every vector (the engine's own search, as encoding does it) and the MSE.
double assign(const Tensor& book, const float* data, int64_t n, int32_t* codes) {
  ResidualVQ vq({book});
  const int64_t D = book.dim(1);
  Tensor q({D, n});
  vq.encode(data, n, 1, codes, q.data());
  double se = 0;
  for (int64_t i = 0; i < D * n; ++i) {
    const double d = double(data[i]) - q[i];
    se += d * d;
  }
  return se / double(D * n);
}

}  // namespace

double codebook_mse(const Tensor& codebook, const float* data, int64_t n, int32_t* codes) {
  check_inputs(codebook, data, n);
  std::vector<int32_t> own;
  if (!codes) {
    own.resize(size_t(n));
    codes = own.data();
  }
  return assign(codebook, data, n, codes);
}

Tensor adapt_codebook(const Tensor& old, const float* data, int64_t n, const CodebookAdaptOptions& opt,
                      CodebookAdaptStats* stats) {
  check_inputs(old, data, n);
  if (opt.iterations < 0) throw Error("codebook adaptation: iterations must be >= 0");
  if (!(opt.anchor >= 0) || !std::isfinite(opt.anchor))
    throw Error("codebook adaptation: anchor must be a number >= 0");
  if (!(opt.radius >= 0)) throw Error("codebook adaptation: radius must be >= 0");
  const int64_t K = old.dim(0), D = old.dim(1);
  // h_k: half the distance from o_k to its nearest other old centroid (its old Voronoi cell holds that ball).
  std::vector<double> half(size_t(K), K > 1 ? 1e300 : std::numeric_limits<double>::infinity());
  for (int64_t a = 0; a < K; ++a)
    for (int64_t b = a + 1; b < K; ++b) {
      double d2 = 0;
      for (int64_t d = 0; d < D; ++d) {
        const double t = double(old[a * D + d]) - old[b * D + d];
        d2 += t * t;
      }
      const double h = 0.5 * std::sqrt(d2);
      half[size_t(a)] = std::min(half[size_t(a)], h);
      half[size_t(b)] = std::min(half[size_t(b)], h);
    }

  Tensor book = old;
  std::vector<int32_t> codes(static_cast<size_t>(n)), prev;
  std::vector<double> sum(static_cast<size_t>(K * D));
  std::vector<int64_t> count(static_cast<size_t>(K));
  CodebookAdaptStats st;
  for (int step = 1; step <= opt.iterations; ++step) {
    const double mse = assign(book, data, n, codes.data());
    if (step == 1) st.mse_before = mse;
    if (codes == prev) break;  // converged: the re-estimate would give the same centroids
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = codes[size_t(i)];
      ++count[size_t(k)];
      for (int64_t d = 0; d < D; ++d) sum[size_t(k * D + d)] += data[d * n + i];
    }
    st.codes_used = st.codes_capped = 0;
    st.mean_move = st.max_move = 0;
    for (int64_t k = 0; k < K; ++k) {
      float* c = book.data() + k * D;
      const float* o = old.data() + k * D;
      const double nk = double(count[size_t(k)]);
      if (nk == 0) {  // no vector: the prior alone, i.e. the old centroid
        std::copy(o, o + D, c);
        continue;
      }
      std::vector<double> move(static_cast<size_t>(D));
      double len2 = 0;
      for (int64_t d = 0; d < D; ++d) {
        move[size_t(d)] = (sum[size_t(k * D + d)] + opt.anchor * o[d]) / (nk + opt.anchor) - o[d];
        len2 += move[size_t(d)] * move[size_t(d)];
      }
      const double len = std::sqrt(len2);
      double scale = 1.0;
      if (opt.limit == MoveLimit::Ball) {
        const double limit = opt.radius * half[size_t(k)];
        if (len > limit) scale = len > 0 ? limit / len : 0.0;
      } else if (len > 0) {
        // o_k + t * move stays nearer o_k than o_j while 2 t move.(o_j - o_k) <= |o_j - o_k|^2.
        double t_max = std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < K; ++j) {
          if (j == k) continue;
          double dot = 0, d2 = 0;
          for (int64_t d = 0; d < D; ++d) {
            const double e = double(old[j * D + d]) - o[d];
            dot += move[size_t(d)] * e;
            d2 += e * e;
          }
          if (dot > 0) t_max = std::min(t_max, d2 / (2 * dot));
        }
        scale = std::min(1.0, opt.radius * t_max);
      }
      if (scale < 1.0) ++st.codes_capped;
      for (int64_t d = 0; d < D; ++d) c[d] = float(o[d] + scale * move[size_t(d)]);
      ++st.codes_used;
      const double rel = std::isfinite(half[size_t(k)]) && half[size_t(k)] > 0 ? len * scale / half[size_t(k)] : 0.0;
      st.mean_move += rel;
      st.max_move = std::max(st.max_move, rel);
    }
    if (st.codes_used) st.mean_move /= double(st.codes_used);
    st.steps = step;
    prev = codes;
    if (opt.on_step) opt.on_step(step, mse);
  }
  st.mse_after = assign(book, data, n, codes.data());
  if (opt.iterations == 0) st.mse_before = st.mse_after;
  if (stats) *stats = st;
  return book;
}

}  // namespace wavtok
