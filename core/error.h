// The engine's one exception type: every message names the file or input and the problem.
#pragma once

#include <stdexcept>
#include <string>

namespace wavtok {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace wavtok
