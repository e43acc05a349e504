// Codes of one stream (what the quantizer gives and token files hold).
#pragma once

#include <cstdint>
#include <vector>

namespace wavtok {

// Codes of one stream, row-major [n_q, frames].
struct Tokens {
  int n_q = 0;
  int64_t frames = 0;
  std::vector<int32_t> codes;
};

}  // namespace wavtok
