#include "core/progress.h"

namespace wavtok {
namespace {
thread_local ProgressFn g_progress;
}

ProgressScope::ProgressScope(ProgressFn fn) : previous_(std::move(g_progress)) { g_progress = std::move(fn); }
ProgressScope::~ProgressScope() { g_progress = std::move(previous_); }

ProgressFn current_progress() { return g_progress; }

void report_progress(const char* phase, double fraction) {
  if (g_progress) g_progress(phase, fraction);
}

}  // namespace wavtok
