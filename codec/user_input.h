// Checks of settings and arrays a caller hands the library (the CLI, the Python package), so that each front end
// refuses bad input with the same message instead of writing its own checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/model.h"

namespace wavtok {

// The number of codebooks to use: from a bandwidth in kbps (> 0; EnCodec-format models), or n_q (> 0, at most
// the model's), or all the model has when both are 0. Throws when both are given, n_q exceeds the model's or the
// bandwidth is not one the model offers (ModelConfig::n_q_for_bandwidth lists those).
int select_n_q(const Model& m, double bandwidth_kbps, int n_q);

// A latent for `m` from an array of `shape` (dim, frames) or (1, dim, frames) holding `values` (row-major):
// throws naming `what` for another shape, zero frames or a NaN/Inf value.
Tensor latents_from_array(const std::vector<int64_t>& shape, const std::vector<float>& values, const Model& m,
                          const std::string& what);

}  // namespace wavtok
