#include "quant/mixed.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <string>

#include "core/error.h"
#include "quant/uniform.h"

namespace wavtok::quant {
namespace {

void check_groups(size_t wsize, int64_t rows, int64_t cols, int64_t group) {
  if (rows <= 0 || cols <= 0 || int64_t(wsize) != rows * cols)
    throw Error("quant: weight size does not match rows x cols");
  if (group <= 0 || cols % group != 0)
    throw Error("quant: group size " + std::to_string(group) + " does not divide " + std::to_string(cols) + " columns");
}

// Salience-weighted squared error of one group quantized at `bits` (asymmetric min-max).
double group_error(const float* w, const float* xsq, int64_t group, int bits, float* out) {
  auto [mn, mx] = std::minmax_element(w, w + group);
  float s;
  int32_t z;
  params_for_range(*mn, *mx, bits, false, true, s, z);
  const double qmax = qmax_for(bits, false);
  double e = 0;
  for (int64_t k = 0; k < group; ++k) {
    const double q = std::clamp(std::nearbyint(double(w[k]) / s) + z, 0.0, qmax);
    const double v = double(s) * (q - z);
    if (out) out[k] = float(v);
    e += double(xsq ? xsq[k] : 1.0f) * (w[k] - v) * (w[k] - v);
  }
  return e;
}

}  // namespace

std::vector<int> greedy_bit_allocation(std::span<const int64_t> sizes, std::span<const int> candidates,
                                       const std::function<double(size_t, int)>& error, double budget_bits) {
  if (sizes.empty() || candidates.empty()) throw Error("quant: greedy allocation needs layers and candidate widths");
  std::vector<int> cand(candidates.begin(), candidates.end());
  std::sort(cand.begin(), cand.end());
  cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
  double min_total = 0;
  for (int64_t s : sizes) {
    if (s <= 0) throw Error("quant: layer sizes must be positive");
    min_total += double(s) * cand.front();
  }
  if (min_total > budget_bits)
    throw Error("quant: budget of " + std::to_string(budget_bits) + " bits is below the all-" +
                std::to_string(cand.front()) + "-bit size " + std::to_string(min_total));

  const size_t L = sizes.size();
  std::vector<size_t> level(L, cand.size() - 1);
  std::map<std::pair<size_t, size_t>, double> cache;  // each (layer, width) measured once
  auto err = [&](size_t l, size_t c) {
    auto it = cache.find({l, c});
    if (it != cache.end()) return it->second;
    const double e = error(l, cand[c]);
    cache[{l, c}] = e;
    return e;
  };
  double total = 0;
  for (int64_t s : sizes) total += double(s) * cand.back();
  while (total > budget_bits) {
    size_t pick = L;
    double best = std::numeric_limits<double>::infinity();
    for (size_t l = 0; l < L; ++l) {
      if (level[l] == 0) continue;
      const double saved = double(sizes[l]) * (cand[level[l]] - cand[level[l] - 1]);
      const double cost = (err(l, level[l] - 1) - err(l, level[l])) / saved;
      if (cost < best) best = cost, pick = l;
    }
    total -= double(sizes[pick]) * (cand[level[pick]] - cand[level[pick] - 1]);
    --level[pick];
  }
  std::vector<int> bits(L);
  for (size_t l = 0; l < L; ++l) bits[l] = cand[level[l]];
  return bits;
}

std::vector<double> group_salience(std::span<const float> w, int64_t rows, int64_t cols, int64_t group,
                                   std::span<const float> x_sq_mean) {
  check_groups(w.size(), rows, cols, group);
  if (int64_t(x_sq_mean.size()) != cols)
    throw Error("quant: activation statistics have " + std::to_string(x_sq_mean.size()) + " columns, weight has " +
                std::to_string(cols));
  std::vector<double> s(rows * cols / group, 0.0);
  for (int64_t i = 0; i < rows * cols; ++i) s[i / group] += double(w[i]) * w[i] * x_sq_mean[i % cols];
  return s;
}

GroupBits salience_bit_allocation(std::span<const float> w, int64_t rows, int64_t cols, int64_t group,
                                  std::span<const float> x_sq_mean, int mid, int step) {
  const std::vector<double> sal = group_salience(w, rows, cols, group, x_sq_mean);
  const int lo = mid - step, hi = mid + step;
  if (step <= 0 || lo < 2 || hi > 16)
    throw Error("quant: widths {" + std::to_string(lo) + ", " + std::to_string(mid) + ", " + std::to_string(hi) +
                "} outside 2..16");
  const int64_t n = int64_t(sal.size());
  std::vector<double> e_lo(n), e_mid(n), e_hi(n);
  for (int64_t g = 0; g < n; ++g) {
    const int64_t off = g * group;
    const float* xs = &x_sq_mean[off % cols];
    e_lo[g] = group_error(&w[off], xs, group, lo, nullptr);
    e_mid[g] = group_error(&w[off], xs, group, mid, nullptr);
    e_hi[g] = group_error(&w[off], xs, group, hi, nullptr);
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sal[a] > sal[b]; });

  GroupBits out;
  double total = std::accumulate(e_mid.begin(), e_mid.end(), 0.0);
  double best = total;
  int64_t best_k = 0;
  for (int64_t k = 1; k <= n / 2; ++k) {  // promote the k-th most and demote the k-th least salient
    const int64_t top = order[k - 1], bot = order[n - k];
    total += (e_hi[top] - e_mid[top]) + (e_lo[bot] - e_mid[bot]);
    if (total < best) best = total, best_k = k;
  }
  out.bits.assign(n, mid);
  for (int64_t k = 0; k < best_k; ++k) out.bits[order[k]] = hi, out.bits[order[n - 1 - k]] = lo;
  out.pairs = best_k;
  out.weighted_error = best;
  return out;
}

void fake_quant_groups(std::span<const float> w, int64_t rows, int64_t cols, int64_t group, std::span<const int> bits,
                       std::span<float> out) {
  check_groups(w.size(), rows, cols, group);
  if (int64_t(bits.size()) != rows * cols / group || out.size() != w.size())
    throw Error("quant: per-group widths or output size mismatch");
  for (int64_t g = 0; g < int64_t(bits.size()); ++g)
    group_error(&w[g * group], nullptr, group, bits[g], &out[g * group]);
}

std::vector<float> column_mean_square(std::span<const float> x, int64_t T, int64_t cols) {
  if (T <= 0 || cols <= 0 || int64_t(x.size()) != T * cols)
    throw Error("quant: activation size does not match T x cols");
  std::vector<double> acc(cols, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < cols; ++j) acc[j] += double(x[t * cols + j]) * x[t * cols + j];
  std::vector<float> out(cols);
  for (int64_t j = 0; j < cols; ++j) out[j] = float(acc[j] / T);
  return out;
}

void fwht(std::span<float> x) {
  const size_t n = x.size();
  if (n == 0 || (n & (n - 1)) != 0)
    throw Error("quant: Hadamard transform needs a power-of-two length, got " + std::to_string(n));
  for (size_t h = 1; h < n; h <<= 1)
    for (size_t i = 0; i < n; i += h << 1)
      for (size_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b, x[j + h] = a - b;
      }
  const float norm = float(1.0 / std::sqrt(double(n)));
  for (float& v : x) v *= norm;
}

void fwht_inverse(std::span<float> x) { fwht(x); }

void hadamard_rows(std::span<float> m, int64_t rows, int64_t n) {
  if (rows <= 0 || int64_t(m.size()) != rows * n) throw Error("quant: matrix size does not match rows x n");
  for (int64_t r = 0; r < rows; ++r) fwht(m.subspan(r * n, n));
}

}  // namespace wavtok::quant
