#include "quant/lowbit.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace wavtok::quant {
namespace {

struct Choice {
  int mult = 1;
  double err = 0;
};

// Salience-weighted error of group w[0..n) at width `bits` with multiplier m and row scale S.
double group_err(const float* w, const double* h, int64_t n, int qmax, float S, int m) {
  const float step = S * float(m);
  double e = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float q = std::clamp(std::nearbyint(w[j] / step), -float(qmax), float(qmax));
    const double d = double(w[j]) - double(S) * double(float(m) * q);
    e += h[j] * d * d;
  }
  return e;
}

// SQC: the multiplier minimising the salience-weighted error (candidates from half the min-max one up to it).
Choice fit_group(const float* w, const double* h, int64_t n, int bits, float S, bool sqc) {
  const int qmax = lowbit_qmax(bits);
  const int mmax = 127 / qmax;
  float amax = 0;
  for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(w[j]));
  const double m0 = double(amax) / (double(qmax) * S);  // min-max multiplier (real)
  const int hi = std::clamp(int(std::ceil(m0 - 1e-9)), 1, mmax);
  Choice best{hi, group_err(w, h, n, qmax, S, hi)};
  if (!sqc) return best;
  const int lo = std::max(1, int(std::floor(0.5 * m0)));
  for (int m = lo; m < hi; ++m) {
    const double e = group_err(w, h, n, qmax, S, m);
    if (e < best.err) best = {m, e};
  }
  return best;
}

void check_shape(size_t wsize, int64_t rows, int64_t cols, int64_t group) {
  if (rows <= 0 || cols <= 0 || int64_t(wsize) != rows * cols)
    throw Error("quant: low-bit weight size does not match rows x cols");
  if (group <= 0) throw Error("quant: low-bit group size must be positive, got " + std::to_string(group));
}

}  // namespace

double LowBitWeights::avg_bits() const {
  const int64_t G = groups_per_row();
  double total = 0;
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t g = 0; g < G; ++g) total += double(bits[o * G + g]) * double(std::min(group, cols - g * group));
  return rows > 0 && cols > 0 ? total / double(rows * cols) : 0;
}

std::vector<float> LowBitWeights::dequantize() const {
  std::vector<float> w(codes.size());
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t j = 0; j < cols; ++j) w[o * cols + j] = float(codes[o * cols + j]) * row_scale[o];
  return w;
}

LowBitWeights quantize_lowbit(std::span<const float> w, int64_t rows, int64_t cols, std::span<const float> x_sq_mean,
                              const LowBitSpec& spec) {
  check_shape(w.size(), rows, cols, spec.group);
  if (int64_t(x_sq_mean.size()) != cols) throw Error("quant: low-bit salience needs one E[x^2] per column");
  std::vector<int> widths = spec.widths;
  std::sort(widths.begin(), widths.end());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  if (widths.empty() || widths.front() < 2 || widths.back() > 8) throw Error("quant: low-bit widths must lie in 2..8");
  if (!(spec.avg_bits >= widths.front() - 1e-9))
    throw Error("quant: average of " + std::to_string(spec.avg_bits) + " bits is below the smallest width " +
                std::to_string(widths.front()));
  for (float v : w)
    if (!std::isfinite(v)) throw Error("quant: low-bit weights contain NaN or Inf");
  LowBitWeights r;
  r.rows = rows, r.cols = cols, r.group = spec.group;
  const int64_t G = r.groups_per_row(), NG = rows * G, W = int64_t(widths.size());
  r.row_scale.assign(rows, 1.0f);
  // Salience weights h_j = E[x_j^2] (a floor keeps dead inputs from leaving the quantizer unconstrained).
  double hmean = 0;
  for (float v : x_sq_mean) {
    if (!(v >= 0) || !std::isfinite(v)) throw Error("quant: E[x^2] must be finite and >= 0");
    hmean += v;
  }
  hmean = hmean / double(cols);
  std::vector<double> h(cols);
  for (int64_t j = 0; j < cols; ++j) h[j] = double(x_sq_mean[j]) + 1e-6 * hmean + 1e-30;
  std::vector<Choice> ch(size_t(NG * W));
  for (int64_t o = 0; o < rows; ++o) {
    float amax = 0;
    for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(w[o * cols + j]));
    const float S = amax > 0 ? amax / 127.0f : 1.0f;
    r.row_scale[o] = S;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t j0 = g * spec.group, n = std::min(spec.group, cols - j0);
      for (int64_t k = 0; k < W; ++k)
        ch[size_t((o * G + g) * W + k)] = fit_group(w.data() + o * cols + j0, h.data() + j0, n, widths[k], S, spec.sqc);
    }
  }
  auto len = [&](int64_t gi) { return std::min(spec.group, cols - (gi % G) * spec.group); };
  const double budget = spec.avg_bits * double(rows * cols) + 1e-6;
  std::vector<int64_t> pick(NG);
  auto assign = [&](double lambda) {
    double used = 0;
    for (int64_t gi = 0; gi < NG; ++gi) {
      int64_t best = 0;
      double bv = std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < W; ++k) {
        const double v = ch[size_t(gi * W + k)].err + lambda * double(len(gi)) * widths[k];
        if (v < bv) bv = v, best = k;
      }
      pick[gi] = best;
      used += double(len(gi)) * widths[best];
    }
    return used;
  };
  if (assign(0.0) > budget) {
    double lo = 0, hi = 1e-30;
    while (assign(hi) > budget) {
      lo = hi;
      hi *= 4;
      if (hi > 1e300) throw Error("quant: low-bit allocation did not converge");
    }
    for (int it = 0; it < 200 && hi > lo * (1 + 1e-12); ++it) {
      const double mid = 0.5 * (lo + hi);
      (assign(mid) > budget ? lo : hi) = mid;
    }
    double used = assign(hi);
    // Spend what is left on the best error reduction per extra bit: each group's best single upgrade, best
    // first, in one pass (O(n log n); the bisection leaves little, unless many groups tie).
    struct Up {
      double gain;
      int64_t gi, k;
    };
    std::vector<Up> ups;
    for (int64_t gi = 0; gi < NG; ++gi) {
      Up best{0, gi, -1};
      for (int64_t k = pick[gi] + 1; k < W; ++k) {
        const double extra = double(len(gi)) * (widths[k] - widths[pick[gi]]);
        const double gain = (ch[size_t(gi * W + pick[gi])].err - ch[size_t(gi * W + k)].err) / extra;
        if (gain > best.gain) best = {gain, gi, k};
      }
      if (best.k >= 0) ups.push_back(best);
    }
    std::sort(ups.begin(), ups.end(), [](const Up& a, const Up& b) { return a.gain > b.gain; });
    for (const Up& u : ups) {
      const double extra = double(len(u.gi)) * (widths[u.k] - widths[pick[u.gi]]);
      if (used + extra > budget) continue;
      used += extra;
      pick[u.gi] = u.k;
    }
  }
  r.bits.resize(NG);
  r.mult.resize(NG);
  r.codes.resize(size_t(rows * cols));
  for (int64_t gi = 0; gi < NG; ++gi) {
    const int b = widths[pick[gi]], qmax = lowbit_qmax(b);
    const Choice& c = ch[size_t(gi * W + pick[gi])];
    r.bits[gi] = uint8_t(b);
    r.mult[gi] = uint8_t(c.mult);
    r.weighted_error += c.err;
    const int64_t o = gi / G, j0 = (gi % G) * spec.group, n = len(gi);
    const float step = r.row_scale[o] * float(c.mult);
    for (int64_t j = j0; j < j0 + n; ++j) {
      const float q = std::clamp(std::nearbyint(w[o * cols + j] / step), -float(qmax), float(qmax));
      r.codes[o * cols + j] = int8_t(int(q) * c.mult);
    }
  }
  return r;
}

int64_t hadamard_block(int64_t n, int64_t cap) {
  if (n <= 0) throw Error("quant: Hadamard rotation of an empty dimension");
  int64_t b = 1;
  while (n % (b * 2) == 0 && b * 2 <= cap) b *= 2;
  return b;
}

namespace {
void fwht64(double* x, int64_t n, int64_t stride) {
  for (int64_t h = 1; h < n; h <<= 1)
    for (int64_t i = 0; i < n; i += h << 1)
      for (int64_t j = i; j < i + h; ++j) {
        const double a = x[j * stride], b = x[(j + h) * stride];
        x[j * stride] = a + b, x[(j + h) * stride] = a - b;
      }
  const double norm = 1.0 / std::sqrt(double(n));
  for (int64_t j = 0; j < n; ++j) x[j * stride] *= norm;
}
void check_block(int64_t n, int64_t block) {
  if (block <= 0 || (block & (block - 1)) != 0 || n % block != 0)
    throw Error("quant: Hadamard block " + std::to_string(block) + " is not a power of two dividing " +
                std::to_string(n));
}
}  // namespace

void rotate_columns(std::span<float> w, int64_t rows, int64_t n, int64_t block) {
  check_block(n, block);
  if (rows <= 0 || int64_t(w.size()) != rows * n) throw Error("quant: matrix size does not match rows x n");
  std::vector<double> t(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) t[j] = w[r * n + j];
    for (int64_t b0 = 0; b0 < n; b0 += block) fwht64(t.data() + b0, block, 1);
    for (int64_t j = 0; j < n; ++j) w[r * n + j] = float(t[j]);
  }
}

void rotate_rows(std::span<float> w, int64_t n, int64_t cols, int64_t block) {
  check_block(n, block);
  if (cols <= 0 || int64_t(w.size()) != n * cols) throw Error("quant: matrix size does not match n x cols");
  std::vector<double> t(static_cast<size_t>(n * cols));
  for (size_t i = 0; i < t.size(); ++i) t[i] = w[i];
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t b0 = 0; b0 < n; b0 += block) fwht64(t.data() + b0 * cols + c, block, cols);
  for (size_t i = 0; i < t.size(); ++i) w[i] = float(t[i]);
}

}  // namespace wavtok::quant
