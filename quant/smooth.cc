#include "quant/smooth.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "quant/uniform.h"

namespace wavtok::quant {
namespace {

void check_layer(std::span<const float> x, int64_t T, int64_t cin, std::span<const float> w, std::span<const float> b,
                 int64_t cout) {
  if (T <= 0 || cin <= 0 || cout <= 0) throw Error("quant: smoothing needs positive T, cin, cout");
  if (int64_t(x.size()) != T * cin)
    throw Error("quant: activation has " + std::to_string(x.size()) +
                " values, expected T*cin = " + std::to_string(T * cin));
  if (int64_t(w.size()) != cout * cin)
    throw Error("quant: weight has " + std::to_string(w.size()) +
                " values, expected cout*cin = " + std::to_string(cout * cin));
  if (int64_t(b.size()) != cout)
    throw Error("quant: bias has " + std::to_string(b.size()) + " values, expected " + std::to_string(cout));
}

}  // namespace

std::vector<double> linear_f64(std::span<const float> x, int64_t T, int64_t cin, std::span<const float> w,
                               std::span<const float> b, int64_t cout) {
  check_layer(x, T, cin, w, b, cout);
  std::vector<double> y(T * cout);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < cout; ++o) {
      double acc = b[o];
      const float* xr = &x[t * cin];
      const float* wr = &w[o * cin];
      for (int64_t j = 0; j < cin; ++j) acc += double(xr[j]) * wr[j];
      y[t * cout + o] = acc;
    }
  return y;
}

SmoothResult smooth_quant_bias(std::span<const float> x, int64_t T, int64_t cin, std::span<const float> w,
                               std::span<const float> b, int64_t cout, double alpha, bool use_bias) {
  check_layer(x, T, cin, w, b, cout);
  if (!(alpha >= 0 && alpha <= 1)) throw Error("quant: smoothing alpha must lie in [0, 1]");
  std::vector<double> lo(cin, std::numeric_limits<double>::infinity()),
      hi(cin, -std::numeric_limits<double>::infinity()), wmax(cin, 0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < cin; ++j)
      lo[j] = std::min(lo[j], double(x[t * cin + j])), hi[j] = std::max(hi[j], double(x[t * cin + j]));
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t j = 0; j < cin; ++j) wmax[j] = std::max(wmax[j], double(std::abs(w[o * cin + j])));

  SmoothResult r;
  r.alpha = alpha;
  r.shift.resize(cin), r.scale.resize(cin);
  for (int64_t j = 0; j < cin; ++j) {
    const double d = use_bias ? 0.5 * (lo[j] + hi[j]) : 0.0;
    const double amax = std::max(hi[j] - d, d - lo[j]);
    double s = 1.0;
    if (amax > 0 && wmax[j] > 0) s = std::pow(amax, alpha) / std::pow(wmax[j], 1 - alpha);
    r.shift[j] = float(d);
    r.scale[j] = float(std::clamp(s, 1e-5, 1e5));  // dead channels must not blow up the fold
  }
  r.weight.resize(w.size());
  r.bias.resize(cout);
  for (int64_t o = 0; o < cout; ++o) {
    double acc = b[o];
    for (int64_t j = 0; j < cin; ++j) {
      r.weight[o * cin + j] = float(double(w[o * cin + j]) * r.scale[j]);
      acc += double(w[o * cin + j]) * r.shift[j];
    }
    r.bias[o] = float(acc);
  }
  return r;
}

void apply_smooth(std::span<const float> x, int64_t T, int64_t cin, const SmoothResult& r, std::span<float> out) {
  if (int64_t(x.size()) != T * cin || out.size() != x.size() || int64_t(r.scale.size()) != cin)
    throw Error("quant: apply_smooth shape mismatch");
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < cin; ++j) out[t * cin + j] = float((double(x[t * cin + j]) - r.shift[j]) / r.scale[j]);
}

void fold_into_layernorm(std::span<float> gamma, std::span<float> beta, const SmoothResult& r) {
  if (gamma.size() != r.scale.size() || beta.size() != r.scale.size())
    throw Error("quant: LayerNorm affine does not match the smoothing channels");
  for (size_t j = 0; j < gamma.size(); ++j) {
    gamma[j] = float(double(gamma[j]) / r.scale[j]);
    beta[j] = float((double(beta[j]) - r.shift[j]) / r.scale[j]);
  }
}

double quantized_layer_mse(std::span<const float> x_in, int64_t T, int64_t cin, std::span<const float> w,
                           std::span<const float> b, int64_t cout, std::span<const double> y_ref,
                           const LayerQuantSpec& q) {
  check_layer(x_in, T, cin, w, b, cout);
  if (int64_t(y_ref.size()) != T * cout) throw Error("quant: reference output size mismatch");
  const std::vector<int64_t> xs{T, cin}, ws{cout, cin};
  std::vector<float> xq(x_in.size()), wq(w.size());
  fake_quant(x_in, xq, calibrate(x_in, xs, {.bits = q.a_bits, .symmetric = q.a_symmetric}));
  fake_quant(w, wq,
             calibrate(w, ws, {.bits = q.w_bits, .symmetric = true, .gran = Granularity::kPerChannel, .axis = 0}));
  const std::vector<double> y = linear_f64(xq, T, cin, wq, b, cout);
  double e = 0;
  for (size_t i = 0; i < y.size(); ++i) e += (y[i] - y_ref[i]) * (y[i] - y_ref[i]);
  return e / double(y.size());
}

SmoothResult search_smooth_alpha(std::span<const float> x, int64_t T, int64_t cin, std::span<const float> w,
                                 std::span<const float> b, int64_t cout, const LayerQuantSpec& q, bool use_bias,
                                 std::span<const double> alphas) {
  std::vector<double> grid(alphas.begin(), alphas.end());
  if (grid.empty())
    for (int i = 0; i <= 20; ++i) grid.push_back(i * 0.05);
  const std::vector<double> y_ref = linear_f64(x, T, cin, w, b, cout);
  SmoothResult best;
  double best_e = std::numeric_limits<double>::infinity();
  std::vector<float> xs(x.size());
  for (double a : grid) {
    SmoothResult r = smooth_quant_bias(x, T, cin, w, b, cout, a, use_bias);
    apply_smooth(x, T, cin, r, xs);
    const double e = quantized_layer_mse(xs, T, cin, r.weight, r.bias, cout, y_ref, q);
    if (e < best_e) best_e = e, best = std::move(r);
  }
  return best;
}

}  // namespace wavtok::quant
