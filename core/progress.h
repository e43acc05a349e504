// Progress of long one-shot runs. A caller installs a callback for the current thread with ProgressScope;
// the model reports finished steps through report_progress(). Costs nothing when no callback is set.
#pragma once

#include <functional>
#include <string>

namespace wavtok {

// fraction in [0, 1] of the current phase ("encode", "decode").
using ProgressFn = std::function<void(const char* phase, double fraction)>;

class ProgressScope {
 public:
  explicit ProgressScope(ProgressFn fn);
  ~ProgressScope();
  ProgressScope(const ProgressScope&) = delete;
  ProgressScope& operator=(const ProgressScope&) = delete;

 private:
  ProgressFn previous_;
};

void report_progress(const char* phase, double fraction);
// The callback installed on this thread (empty when none).
ProgressFn current_progress();

}  // namespace wavtok
