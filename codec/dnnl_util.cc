#include "codec/dnnl_util.h"

#include <omp.h>

namespace wavtok {

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
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
