#include "quant/log_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "core/error.h"

namespace wavtok::quant {
namespace {

void check_bits(int bits) {
  if (bits < 2 || bits > 8) throw Error("quant: log/tan quantizer bit width " + std::to_string(bits) + " outside 2..8");
}

void check_scale(float s) {
  if (!(s > 0) || !std::isfinite(s))
    throw Error("quant: log/tan quantizer needs a positive finite scale (is the calibration data all <= 0?)");
}

// Strided subsample so the grid searches cost O(max_samples) per candidate.
std::vector<float> subsample(std::span<const float> x, int64_t max_samples) {
  if (x.empty()) throw Error("quant: empty calibration tensor");
  for (float v : x)
    if (!std::isfinite(v)) throw Error("quant: calibration tensor contains a non-finite value");
  const int64_t n = int64_t(x.size());
  const int64_t stride = max_samples > 0 && n > max_samples ? (n + max_samples - 1) / max_samples : 1;
  std::vector<float> s;
  s.reserve(n / stride + 1);
  for (int64_t i = 0; i < n; i += stride) s.push_back(x[i]);
  return s;
}

double mse_of(std::span<const float> x, const LogQParams& p) {
  double e = 0;
  for (float v : x) {
    const double d = double(v) - (double(p.levels[p.code(v)]) - p.shift);
    e += d * d;
  }
  return e / double(x.size());
}

float max_of(std::span<const float> x) { return *std::max_element(x.begin(), x.end()); }

}  // namespace

uint8_t LogQParams::code(float x) const {
  const int L = 1 << bits;
  const double u = double(x) + shift;
  if (std::isnan(u)) return kind == LogKind::kTan ? 0 : uint8_t(L - 1);  // NaN -> the zero (or smallest) level
  if (kind == LogKind::kTan) {
    const double v = std::clamp(u / scale, 0.0, 1.0);  // keep tan on its monotone branch
    const double q = std::nearbyint((std::tan(tan_a * (v - tan_m)) - tan_t0) / tan_d);
    return uint8_t(std::clamp(q, 0.0, double(L - 1)));
  }
  if (!(u > 0)) return uint8_t(L - 1);  // zero code, or the smallest level
  const int levels_used = zero_code ? L - 1 : L;
  const double q = std::nearbyint(-std::log2(u / scale) * double(r) / double(k));
  if (q <= 0) return 0;
  if (q >= levels_used) return uint8_t(L - 1);
  return uint8_t(q);
}

LogQParams make_log_sqrt2(float scale, int bits, bool zero_code) {
  check_bits(bits);
  check_scale(scale);
  LogQParams p;
  p.kind = LogKind::kLogSqrt2;
  p.bits = bits, p.scale = scale, p.zero_code = zero_code, p.k = 1, p.r = 2;
  const int L = 1 << bits;
  p.levels.resize(L);
  for (int q = 0; q < L; ++q) {
    // Hardware form: shift by ceil(q/2), one sqrt(2) multiply on odd codes.
    const double v = double(scale) * std::ldexp(1.0, -((q + 1) / 2)) * (q % 2 ? std::numbers::sqrt2 : 1.0);
    p.levels[q] = float(v);
  }
  if (zero_code) p.levels[L - 1] = 0;
  return p;
}

LogQParams make_adalog(float scale, int k, int r, int bits, bool zero_code, int mant_bits, float shift) {
  check_bits(bits);
  check_scale(scale);
  if (k <= 0 || r <= 0) throw Error("quant: AdaLog base exponent k/r must be positive");
  if (mant_bits < 1 || mant_bits > 23) throw Error("quant: AdaLog mantissa bits outside 1..23");
  if (!(shift >= 0)) throw Error("quant: AdaLog shift must be >= 0");
  LogQParams p;
  p.kind = LogKind::kAdaLog;
  p.bits = bits, p.scale = scale, p.zero_code = zero_code, p.k = k, p.r = r, p.shift = shift;
  const int L = 1 << bits;
  p.levels.resize(L);
  const double one = std::ldexp(1.0, mant_bits);
  for (int q = 0; q < L; ++q) {
    const int64_t e = int64_t(q) * k;
    const int64_t whole = e / r, frac = e % r;  // exponent q k / r = whole + frac / r
    const double mant = std::nearbyint(std::exp2(-double(frac) / r) * one) / one;
    p.levels[q] = float(double(scale) * std::ldexp(mant, -int(whole)));
  }
  if (zero_code) p.levels[L - 1] = 0;
  return p;
}

LogQParams make_tanq(float scale, double a, double m, int bits) {
  check_bits(bits);
  check_scale(scale);
  if (!(m > 0 && m < 1)) throw Error("quant: TanQ inflection m must lie in (0, 1)");
  if (!(a > 0 && a * std::max(m, 1 - m) < std::numbers::pi / 2))
    throw Error("quant: TanQ steepness a must satisfy 0 < a * max(m, 1-m) < pi/2");
  LogQParams p;
  p.kind = LogKind::kTan;
  p.bits = bits, p.scale = scale, p.zero_code = false, p.tan_a = a, p.tan_m = m;
  const int L = 1 << bits;
  const double t0 = std::tan(-a * m), t1 = std::tan(a * (1 - m)), d = (t1 - t0) / (L - 1);
  p.tan_t0 = t0, p.tan_d = d;
  p.levels.resize(L);
  for (int q = 0; q < L; ++q) p.levels[q] = float(scale * (m + std::atan(t0 + q * d) / a));
  p.levels[0] = 0, p.levels[L - 1] = scale;  // exact ends (atan(tan(.)) rounding)
  return p;
}

LogQParams calibrate_log_sqrt2(std::span<const float> x, const LogQuantSpec& spec) {
  const std::vector<float> s = subsample(x, spec.max_samples);
  const float mx = max_of(s);
  LogQParams best = make_log_sqrt2(mx, spec.bits, spec.zero_code);
  if (!spec.search) return best;
  double best_e = mse_of(s, best);
  for (int i = 50; i < 100; ++i) {
    const LogQParams p = make_log_sqrt2(float(mx * i / 100.0), spec.bits, spec.zero_code);
    const double e = mse_of(s, p);
    if (e < best_e) best_e = e, best = p;
  }
  return best;
}

LogQParams calibrate_adalog(std::span<const float> x, const LogQuantSpec& spec) {
  const std::vector<float> s = subsample(x, spec.max_samples);
  const int r = spec.adalog_r;
  if (r < 2) throw Error("quant: AdaLog base denominator r must be >= 2");
  float shift = 0;
  if (spec.shift_negative) shift = std::max(0.0f, -*std::min_element(s.begin(), s.end()));
  const float mx = max_of(s) + shift;
  auto make = [&](int k, double beta) {
    return make_adalog(float(mx * beta), k, r, spec.bits, spec.zero_code, spec.mant_bits, shift);
  };
  if (!spec.search) return make(r / 2, 1.0);

  // (i) base scan at s = max.
  std::vector<std::pair<double, int>> by_k;
  for (int k = 1; k <= 2 * r; ++k) by_k.emplace_back(mse_of(s, make(k, 1.0)), k);
  std::sort(by_k.begin(), by_k.end());
  // (ii) scale search for the best few bases.
  double best_e = std::numeric_limits<double>::infinity(), best_beta = 1.0;
  int best_k = by_k[0].second;
  for (size_t i = 0; i < std::min<size_t>(4, by_k.size()); ++i)
    for (int j = 0; j <= 25; ++j) {
      const double beta = 0.5 + 0.02 * j;
      const double e = mse_of(s, make(by_k[i].second, beta));
      if (e < best_e) best_e = e, best_k = by_k[i].second, best_beta = beta;
    }
  // (iii) joint refinement around the winner.
  const int k0 = best_k;
  const double b0 = best_beta;
  for (int k = std::max(1, k0 - 1); k <= k0 + 1; ++k)
    for (int j = -10; j <= 10; ++j) {
      const double beta = b0 + 0.002 * j;
      if (beta <= 0) continue;
      const double e = mse_of(s, make(k, beta));
      if (e < best_e) best_e = e, best_k = k, best_beta = beta;
    }
  return make(best_k, best_beta);
}

LogQParams calibrate_tanq(std::span<const float> x, const LogQuantSpec& spec) {
  const std::vector<float> s = subsample(x, spec.max_samples);
  const float mx = max_of(s);
  const double half_pi = std::numbers::pi / 2;
  auto make = [&](double m, double f) { return make_tanq(mx, f * half_pi / std::max(m, 1 - m), m, spec.bits); };
  if (!spec.search) return make(0.5, 0.9);
  double best_e = std::numeric_limits<double>::infinity(), best_m = 0.5, best_f = 0.9;
  auto consider = [&](double m, double f) {
    if (!(m > 0 && m < 1 && f > 0 && f < 1)) return;
    const double e = mse_of(s, make(m, f));
    if (e < best_e) best_e = e, best_m = m, best_f = f;
  };
  const double fs[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99};
  for (int i = 1; i <= 19; ++i)
    for (double f : fs) consider(0.05 * i, f);
  const double m0 = best_m, f0 = best_f;
  for (int i = -5; i <= 5; ++i)
    for (int j = -5; j <= 5; ++j) consider(m0 + 0.005 * i, std::min(f0 + 0.01 * j, 0.995));
  return make(best_m, best_f);
}

void quantize(std::span<const float> in, std::span<uint8_t> codes, const LogQParams& p) {
  if (in.size() != codes.size()) throw Error("quant: quantize input and code buffers differ in size");
  for (size_t i = 0; i < in.size(); ++i) codes[i] = p.code(in[i]);
}

void dequantize(std::span<const uint8_t> codes, std::span<float> out, const LogQParams& p) {
  if (out.size() != codes.size()) throw Error("quant: dequantize code and output buffers differ in size");
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] >= p.levels.size())
      throw Error("quant: code " + std::to_string(codes[i]) + " outside the level table");
    out[i] = p.levels[codes[i]] - p.shift;
  }
}

void fake_quant(std::span<const float> in, std::span<float> out, const LogQParams& p) {
  if (in.size() != out.size()) throw Error("quant: fake_quant input and output differ in size");
  for (size_t i = 0; i < in.size(); ++i) out[i] = p.levels[p.code(in[i])] - p.shift;
}

double quant_mse(std::span<const float> x, const LogQParams& p) {
  if (x.empty()) throw Error("quant: empty tensor");
  return mse_of(x, p);
}

void fold_shift_into_bias(std::span<const float> w, int64_t cout, int64_t cin, float shift, std::span<float> bias) {
  if (int64_t(w.size()) != cout * cin || int64_t(bias.size()) != cout)
    throw Error("quant: fold_shift_into_bias shape mismatch");
  for (int64_t o = 0; o < cout; ++o) {
    double row = 0;
    for (int64_t j = 0; j < cin; ++j) row += w[o * cin + j];
    bias[o] = float(double(bias[o]) - double(shift) * row);
  }
}

}  // namespace wavtok::quant
