#include "codec/user_input.h"

#include <cmath>

#include "core/error.h"

namespace wavtok {

int select_n_q(const Model& m, double bandwidth_kbps, int n_q) {
  if (n_q > 0 && bandwidth_kbps > 0) throw Error("give either a bandwidth or a number of codebooks (n_q), not both");
  if (n_q < 0 || !(bandwidth_kbps >= 0))
    throw Error("n_q and the bandwidth must be positive (got n_q " + std::to_string(n_q) + ", bandwidth " +
                std::to_string(bandwidth_kbps) + ")");
  if (bandwidth_kbps > 0) return m.config().n_q_for_bandwidth(bandwidth_kbps);
  if (n_q > 0) {
    if (n_q > m.max_n_q())
      throw Error("n_q " + std::to_string(n_q) + " exceeds this model's " + std::to_string(m.max_n_q()) + " codebooks");
    return n_q;
  }
  return m.max_n_q();
}

Tensor latents_from_array(const std::vector<int64_t>& shape, const std::vector<float>& values, const Model& m,
                          const std::string& what) {
  std::vector<int64_t> s = shape;
  if (s.size() == 3 && s[0] == 1) s.erase(s.begin());
  if (s.size() != 2 || s[0] != m.latent_dim())
    throw Error(what + ": latent has shape " + shape_str(shape) + ", this model expects (1, " +
                std::to_string(m.latent_dim()) + ", frames)");
  if (s[1] < 1) throw Error(what + ": latent has no frames");
  if (int64_t(values.size()) != s[0] * s[1]) throw Error(what + ": latent data do not match its shape");
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) throw Error(what + ": latent contains NaN/Inf at index " + std::to_string(i));
  return Tensor(s, values);
}

}  // namespace wavtok
