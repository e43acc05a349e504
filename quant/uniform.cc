#include "quant/uniform.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace wavtok::quant {
namespace {

void check_bits(int bits) {
  if (bits < 2 || bits > 16) throw Error("quant: bit width " + std::to_string(bits) + " outside 2..16");
}

// One quantize step in float64; round-half-even matches oneDNN's reorder rounding.
inline int32_t code_of(double x, double s, int32_t z, int32_t qmin, int32_t qmax) {
  if (std::isnan(x)) return std::clamp(z, qmin, qmax);  // NaN -> the code of 0, never UB in the cast
  const double q = std::nearbyint(x / s) + z;
  return static_cast<int32_t>(std::clamp(q, double(qmin), double(qmax)));
}

double slot_sse(std::span<const float> v, float s, int32_t z, int32_t qmin, int32_t qmax) {
  double e = 0;
  for (float x : v) {
    const double d = double(x) - double(s) * (code_of(x, s, z, qmin, qmax) - z);
    e += d * d;
  }
  return e;
}

struct Range {
  double lo, hi;
};

// Error of the grid obtained from range r.
double range_sse(std::span<const float> v, Range r, const UniformSpec& spec) {
  float s;
  int32_t z;
  params_for_range(r.lo, r.hi, spec.bits, spec.symmetric, spec.include_zero, s, z);
  return slot_sse(v, s, z, qmin_for(spec.bits, spec.symmetric), qmax_for(spec.bits, spec.symmetric));
}

Range minmax_of(std::span<const float> v) {
  auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  return {double(*mn), double(*mx)};
}

// Order statistic at round((n-1) q), q in [0, 1]; reorders v.
double order_stat(std::span<float> v, double q) {
  const size_t k = static_cast<size_t>(std::llround(double(v.size() - 1) * q));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

// Clipping shrinks toward 0 when the range contains it (keeps 0 exact), else toward the middle.
struct Clipper {
  Range base;
  double anchor;
  Range at(double rlo, double rhi) const {
    return {anchor - rlo * (anchor - base.lo), anchor + rhi * (base.hi - anchor)};
  }
};

Clipper make_clipper(Range r, const UniformSpec& spec) {
  if (spec.symmetric) {
    const double a = std::max(std::abs(r.lo), std::abs(r.hi));
    return {{-a, a}, 0.0};
  }
  if (spec.include_zero) r = {std::min(r.lo, 0.0), std::max(r.hi, 0.0)};
  const double anchor = (r.lo <= 0 && r.hi >= 0) ? 0.0 : 0.5 * (r.lo + r.hi);
  return {r, anchor};
}

Range mse_search(std::span<const float> v, const UniformSpec& spec, bool omse) {
  const Clipper c = make_clipper(minmax_of(v), spec);
  const int grid = std::max(1, spec.mse_grid);
  const int k0 = std::clamp(int(std::lround(spec.mse_min_ratio * grid)), 1, grid);
  double best_r = 1.0, best_e = std::numeric_limits<double>::infinity();
  for (int k = grid; k >= k0; --k) {
    const double r = double(k) / grid;
    const double e = range_sse(v, c.at(r, r), spec);
    if (e < best_e) best_e = e, best_r = r;
  }
  if (!omse) return c.at(best_r, best_r);

  // Golden-section refinement of the joint ratio in the two neighbouring grid cells.
  double rlo = best_r, rhi = best_r;
  {
    const double g = (std::sqrt(5.0) - 1) / 2;
    double a = std::max(best_r - 1.0 / grid, 1e-6), b = std::min(best_r + 1.0 / grid, 1.0);
    double x1 = b - g * (b - a), x2 = a + g * (b - a);
    double f1 = range_sse(v, c.at(x1, x1), spec), f2 = range_sse(v, c.at(x2, x2), spec);
    for (int it = 0; it < 24; ++it) {
      if (f1 < f2) {
        b = x2, x2 = x1, f2 = f1, x1 = b - g * (b - a), f1 = range_sse(v, c.at(x1, x1), spec);
      } else {
        a = x1, x1 = x2, f1 = f2, x2 = a + g * (b - a), f2 = range_sse(v, c.at(x2, x2), spec);
      }
    }
    const double r = f1 < f2 ? x1 : x2, e = std::min(f1, f2);
    if (e < best_e) best_e = e, rlo = rhi = r;
  }
  if (spec.symmetric) return c.at(rlo, rhi);

  // Asymmetric grids: the two tails of an activation usually want different clipping.
  for (int round = 0; round < 2; ++round) {
    for (int side = 0; side < 2; ++side) {
      for (int k = grid; k >= k0; --k) {
        const double r = double(k) / grid;
        const double tlo = side == 0 ? r : rlo, thi = side == 1 ? r : rhi;
        const double e = range_sse(v, c.at(tlo, thi), spec);
        if (e < best_e) best_e = e, rlo = tlo, rhi = thi;
      }
    }
  }
  return c.at(rlo, rhi);
}

Range estimate(std::span<float> v, const UniformSpec& spec) {
  switch (spec.range) {
    case RangeMethod::kMinMax:
      return minmax_of(v);
    case RangeMethod::kPercentile: {
      if (!(spec.percentile > 50 && spec.percentile <= 100)) throw Error("quant: percentile must be in (50, 100]");
      const double p = spec.percentile / 100;
      if (spec.symmetric) {
        for (float& x : v) x = std::abs(x);
        const double a = order_stat(v, p);
        return {-a, a};
      }
      const double hi = order_stat(v, p);
      const double lo = order_stat(v, 1 - p);
      return {lo, hi};
    }
    case RangeMethod::kMse:
      return mse_search(v, spec, false);
    case RangeMethod::kOmse:
      return mse_search(v, spec, true);
  }
  throw Error("quant: unknown range method");
}

void check_io(size_t in, size_t out, const QParams& p) {
  int64_t n = 1;
  for (int64_t d : p.shape) n *= d;
  if (int64_t(in) != n || int64_t(out) != n)
    throw Error("quant: tensor of " + std::to_string(in) + " -> " + std::to_string(out) +
                " elements does not match calibrated shape of " + std::to_string(n));
}

// Applies f(element index, slot scale, slot zero point) over the tensor run by run.
template <class F>
void for_each_element(const QParams& p, F&& f) {
  const SlotLayout l = slot_layout(p.shape, p.gran, p.axis, p.group);
  if (int64_t(p.scale.size()) != l.slots || int64_t(p.zero_point.size()) != l.slots)
    throw Error("quant: params hold " + std::to_string(p.scale.size()) + " scales, layout needs " +
                std::to_string(l.slots));
  const int64_t runs = l.numel / l.run;
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t slot = l.slot_of_run(r);
    const double s = p.scale[slot];
    const int32_t z = p.zero_point[slot];
    for (int64_t i = r * l.run, e = i + l.run; i < e; ++i) f(i, s, z);
  }
}

}  // namespace

int32_t qmin_for(int bits, bool symmetric) {
  check_bits(bits);
  return symmetric ? -((1 << (bits - 1)) - 1) : 0;
}
int32_t qmax_for(int bits, bool symmetric) {
  check_bits(bits);
  return symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
}
int32_t QParams::qmin() const { return qmin_for(bits, symmetric); }
int32_t QParams::qmax() const { return qmax_for(bits, symmetric); }

SlotLayout slot_layout(std::span<const int64_t> shape, Granularity gran, int axis, int group) {
  SlotLayout l;
  l.gran = gran;
  l.numel = 1;
  for (int64_t d : shape) {
    if (d <= 0) throw Error("quant: shape has a non-positive dimension");
    l.numel *= d;
  }
  if (shape.empty()) throw Error("quant: empty shape");
  if (gran == Granularity::kPerTensor) {
    l.run = l.numel;
    l.slots = 1;
    return l;
  }
  if (axis < 0 || axis >= int(shape.size()))
    throw Error("quant: axis " + std::to_string(axis) + " out of range for a rank-" + std::to_string(shape.size()) +
                " tensor");
  int64_t inner = 1;
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  if (gran == Granularity::kPerChannel) {
    l.run = inner;
    l.slots = shape[axis];
    return l;
  }
  const int64_t row = inner * shape[axis];
  if (group <= 0 || row % group != 0)
    throw Error("quant: group size " + std::to_string(group) + " does not divide the reduction length " +
                std::to_string(row));
  l.run = group;
  l.slots = l.numel / group;
  return l;
}

void params_for_range(double lo, double hi, int bits, bool symmetric, bool include_zero, float& scale,
                      int32_t& zero_point) {
  const int32_t qmin = qmin_for(bits, symmetric), qmax = qmax_for(bits, symmetric);
  if (!std::isfinite(lo) || !std::isfinite(hi)) throw Error("quant: non-finite calibration range");
  if (symmetric) {
    const double a = std::max(std::abs(lo), std::abs(hi));
    scale = a > 0 ? float(a / qmax) : 1.0f;
    zero_point = 0;
    return;
  }
  if (include_zero) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo <= 0) {  // constant slot: one exact level
    scale = lo != 0 ? float(std::abs(lo)) : 1.0f;
    zero_point = include_zero ? int32_t(std::clamp(std::nearbyint(-lo / scale), double(qmin), double(qmax)))
                              : int32_t(std::nearbyint(-lo / scale));
    return;
  }
  scale = float((hi - lo) / double(qmax - qmin));
  const double z = qmin - std::nearbyint(lo / scale);
  zero_point = int32_t(include_zero ? std::clamp(z, double(qmin), double(qmax)) : z);
}

QParams params_from_ranges(std::span<const float> lo, std::span<const float> hi, std::span<const int64_t> shape,
                           const UniformSpec& spec) {
  const SlotLayout l = slot_layout(shape, spec.gran, spec.axis, spec.group);
  if (int64_t(lo.size()) != l.slots || int64_t(hi.size()) != l.slots)
    throw Error("quant: " + std::to_string(lo.size()) + " ranges given, layout needs " + std::to_string(l.slots));
  QParams p{{}, {}, spec.bits, spec.symmetric, spec.gran, spec.axis, spec.group, {shape.begin(), shape.end()}};
  p.scale.resize(l.slots);
  p.zero_point.resize(l.slots);
  for (int64_t k = 0; k < l.slots; ++k)
    params_for_range(lo[k], hi[k], spec.bits, spec.symmetric, spec.include_zero, p.scale[k], p.zero_point[k]);
  return p;
}

QParams calibrate(std::span<const float> x, std::span<const int64_t> shape, const UniformSpec& spec) {
  check_bits(spec.bits);
  const SlotLayout l = slot_layout(shape, spec.gran, spec.axis, spec.group);
  if (int64_t(x.size()) != l.numel)
    throw Error("quant: calibration tensor has " + std::to_string(x.size()) + " elements, shape says " +
                std::to_string(l.numel));
  for (float v : x)
    if (!std::isfinite(v)) throw Error("quant: calibration tensor contains a non-finite value");
  std::vector<float> lo(l.slots), hi(l.slots);
  const int64_t runs = l.numel / l.run;
  if (spec.range == RangeMethod::kMinMax) {  // single pass, no copy
    std::fill(lo.begin(), lo.end(), std::numeric_limits<float>::infinity());
    std::fill(hi.begin(), hi.end(), -std::numeric_limits<float>::infinity());
    for (int64_t r = 0; r < runs; ++r) {
      const int64_t s = l.slot_of_run(r);
      for (int64_t i = r * l.run, e = i + l.run; i < e; ++i)
        lo[s] = std::min(lo[s], x[i]), hi[s] = std::max(hi[s], x[i]);
    }
  } else {
    // Every slot owns numel / slots elements: gather each slot contiguously, then estimate.
    const int64_t per = l.numel / l.slots;
    std::vector<float> buf(l.numel);
    std::vector<int64_t> fill(l.slots, 0);
    for (int64_t r = 0; r < runs; ++r) {
      const int64_t s = l.slot_of_run(r);
      std::copy_n(x.begin() + r * l.run, l.run, buf.begin() + s * per + fill[s]);
      fill[s] += l.run;
    }
    for (int64_t s = 0; s < l.slots; ++s) {
      const Range rg = estimate(std::span<float>(buf).subspan(s * per, per), spec);
      lo[s] = float(rg.lo), hi[s] = float(rg.hi);
    }
  }
  return params_from_ranges(lo, hi, shape, spec);
}

void fake_quant(std::span<const float> in, std::span<float> out, const QParams& p) {
  check_io(in.size(), out.size(), p);
  const int32_t qmin = p.qmin(), qmax = p.qmax();
  for_each_element(p,
                   [&](int64_t i, double s, int32_t z) { out[i] = float(s * (code_of(in[i], s, z, qmin, qmax) - z)); });
}

void quantize(std::span<const float> in, std::span<int32_t> out, const QParams& p) {
  check_io(in.size(), out.size(), p);
  const int32_t qmin = p.qmin(), qmax = p.qmax();
  for_each_element(p, [&](int64_t i, double s, int32_t z) { out[i] = code_of(in[i], s, z, qmin, qmax); });
}

void quantize_s8(std::span<const float> in, std::span<int8_t> out, const QParams& p) {
  check_io(in.size(), out.size(), p);
  const int32_t qmin = p.qmin(), qmax = p.qmax();
  if (qmin < -128 || qmax > 127)
    throw Error("quant: " + std::to_string(p.bits) + "-bit " + (p.symmetric ? "symmetric" : "asymmetric") +
                " codes do not fit s8");
  for_each_element(p, [&](int64_t i, double s, int32_t z) { out[i] = int8_t(code_of(in[i], s, z, qmin, qmax)); });
}

void quantize_u8(std::span<const float> in, std::span<uint8_t> out, const QParams& p) {
  check_io(in.size(), out.size(), p);
  const int32_t qmin = p.qmin(), qmax = p.qmax();
  if (qmin < 0 || qmax > 255)
    throw Error("quant: " + std::to_string(p.bits) + "-bit " + (p.symmetric ? "symmetric" : "asymmetric") +
                " codes do not fit u8");
  for_each_element(p, [&](int64_t i, double s, int32_t z) { out[i] = uint8_t(code_of(in[i], s, z, qmin, qmax)); });
}

void dequantize(std::span<const int32_t> in, std::span<float> out, const QParams& p) {
  check_io(in.size(), out.size(), p);
  for_each_element(p, [&](int64_t i, double s, int32_t z) { out[i] = float(s * (in[i] - z)); });
}
void dequantize(std::span<const int8_t> in, std::span<float> out, const QParams& p) {
  check_io(in.size(), out.size(), p);
  for_each_element(p, [&](int64_t i, double s, int32_t z) { out[i] = float(s * (in[i] - z)); });
}
void dequantize(std::span<const uint8_t> in, std::span<float> out, const QParams& p) {
  check_io(in.size(), out.size(), p);
  for_each_element(p, [&](int64_t i, double s, int32_t z) { out[i] = float(s * (in[i] - z)); });
}

double quant_mse(std::span<const float> x, const QParams& p) {
  check_io(x.size(), x.size(), p);
  const int32_t qmin = p.qmin(), qmax = p.qmax();
  double e = 0;
  for_each_element(p, [&](int64_t i, double s, int32_t z) {
    const double d = double(x[i]) - s * (code_of(x[i], s, z, qmin, qmax) - z);
    e += d * d;
  });
  return e / double(x.size());
}

}  // namespace wavtok::quant
