#include "core/dnnl_util.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <vector>

#include "core/error.h"

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

namespace {
std::atomic<Precision> g_precision{Precision::F32};
}

dnnl::primitive_attr scratchpad_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

namespace {
std::atomic<uint64_t> g_shapes_created{0};
}  // namespace

uint64_t shapes_created() { return g_shapes_created.load(std::memory_order_relaxed); }
void note_shape_created() { g_shapes_created.fetch_add(1, std::memory_order_relaxed); }

void run_primitive(const dnnl::primitive& p, std::initializer_list<std::pair<int, dnnl::memory>> args) {
  constexpr size_t kMaxArgs = 16;
  if (args.size() + 1 > kMaxArgs) throw Error("run_primitive: too many arguments");
  dnnl_exec_arg_t a[kMaxArgs];
  int n = 0;
  for (const auto& [key, mem] : args) a[n++] = {key, mem.get()};
  const_dnnl_primitive_desc_t pd = p.get_primitive_desc();
  const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  dnnl::memory scratch;
  if (md && md->ndims > 0) {
    dnnl::memory::desc smd(*md);
    thread_local std::vector<uint8_t> buf;
    if (buf.size() < smd.get_size()) buf.resize(smd.get_size());
    scratch = dnnl::memory(smd, cpu_engine(), buf.data());
    a[n++] = {DNNL_ARG_SCRATCHPAD, scratch.get()};
  }
  auto& s = cpu_stream();
  dnnl::error::wrap_c_api(dnnl_primitive_execute(p.get(), s.get(), n, a), "could not execute a primitive");
  s.wait();
}

bool bf16_supported() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

void set_precision(Precision p) {
  if (p == Precision::BF16 && !bf16_supported())
    throw Error("bf16 precision needs a CPU with AVX512-BF16 or AMX; this one has neither (use --precision f32)");
  g_precision = p;
}

Precision get_precision() { return g_precision.load(); }

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace wavtok
