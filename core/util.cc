#include "core/util.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace wavtok {

double snr_db(std::span<const float> ref, std::span<const float> x) {
  double s = 0, n = 0;
  const size_t len = std::min(ref.size(), x.size());
  for (size_t i = 0; i < len; ++i) {
    s += double(ref[i]) * ref[i];
    n += (double(ref[i]) - x[i]) * (double(ref[i]) - x[i]);
  }
  return 10.0 * std::log10(s / std::max(n, 1e-30));
}

std::vector<int8_t> int8_weight_codes(const float* w, int64_t numel, const std::vector<float>& scale) {
  const int64_t cout = int64_t(scale.size());
  if (cout == 0 || numel % cout)
    throw Error("int8 weights: " + std::to_string(numel) + " values do not split into " + std::to_string(cout) +
                " output channels");
  const int64_t per_out = numel / cout;
  std::vector<int8_t> q(static_cast<size_t>(numel));
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < per_out; ++i)
      q[o * per_out + i] =
          static_cast<int8_t>(std::clamp(std::nearbyint(w[o * per_out + i] / scale[o]), -127.0f, 127.0f));
  return q;
}

}  // namespace wavtok
