#include "codec/dnnl_util.h"

#include <omp.h>

#include <cstdlib>

namespace wavtok {

dnnl::engine& cpu_engine() {
  static dnnl::engine eng = [] {
    // oneDNN's ITT task markers (for VTune) cost ~15% of run time in profiles here; off unless asked for.
    setenv("ONEDNN_ITT_TASK_LEVEL", "0", /*overwrite=*/0);
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return eng;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream s(cpu_engine());
  return s;
}

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace wavtok
