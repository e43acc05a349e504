// `wavtok bench --baseline`: the PyTorch reference (python/bench_reference.py) timed on the same inputs.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "apps/bench/bench.h"
#include "codec/streaming.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/util.h"
#include "models/models.h"

#include <filesystem>

#ifndef WAVTOK_BENCH_SOURCE_DIR
#define WAVTOK_BENCH_SOURCE_DIR ""
#endif

namespace wavtok::bench {

namespace {

// Reads "phase@seconds@threads": value pairs from the reference script's "flat" object.
std::map<std::string, double> parse_flat(const std::string& json) {
  std::map<std::string, double> out;
  const auto at = json.find("\"flat\"");
  if (at == std::string::npos) return out;
  const std::string rest = json.substr(at, json.find('}', at) - at);
  std::regex re("\"([a-z]+@[0-9.]+@[0-9]+)\":\\s*([0-9.eE+-]+)");
  for (std::sregex_iterator it(rest.begin(), rest.end(), re), end; it != end; ++it) out[(*it)[1]] = std::stod((*it)[2]);
  return out;
}

std::string reference_script(const BenchOpts& o) {
  if (!o.reference_script.empty()) return o.reference_script;
  namespace fs = std::filesystem;
  std::vector<fs::path> tries = {fs::path(WAVTOK_BENCH_SOURCE_DIR) / "python/bench_reference.py",
                                 fs::path("python/bench_reference.py"),
                                 fs::path(self_exe()).parent_path().parent_path() / "python/bench_reference.py"};
  for (const auto& t : tries)
    if (!t.empty() && fs::exists(t)) return t.string();
  throw Error("bench: cannot find python/bench_reference.py; give --reference-script");
}

}  // namespace

void run_baseline(const Common& c, const BenchOpts& o, const std::vector<int>& thread_counts,
                  const std::vector<double>& lengths, BenchResults& res) {
  try {  // a failing baseline keeps the engine's results
    std::string thr;
    for (int t : thread_counts) thr += (thr.empty() ? "" : ",") + std::to_string(t);
    std::string lens;
    for (double s : lengths) lens += (lens.empty() ? "" : ",") + fmt_len(s);
    // OPENBLAS_CORETYPE (e.g. Haswell: AVX2 only) and OPENBLAS_L2_SIZE hold OpenBLAS to another CPU's kernel and
    // blocking: unset for the PyTorch child only, so the baseline runs what OpenBLAS picks for this CPU.
    const std::string env = o.inherit_blas_env ? "" : "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ";
    const std::string cmd = env + shell_quote(o.python) + " " + shell_quote(reference_script(o)) + " --threads " + thr +
                            " --lengths " + lens + " --repeats " + std::to_string(o.repeats) + " --phases " + o.phases +
                            (c.quiet ? " 2>/dev/null" : "");
    if (!c.quiet) std::fprintf(stderr, "[bench] baseline: %s\n", cmd.c_str());
    res.ref_json = run_capture(cmd);
    res.ref = parse_flat(res.ref_json);
    std::smatch mt;
    if (std::regex_search(res.ref_json, mt, std::regex("\"openblas_core\":\\s*\"([^\"]*)\""))) res.ref_core = mt[1];
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[bench] baseline failed: %s\n", e.what());
    res.ref_json = "null";
  }
}

double reference_s(const BenchResults& res, const PhaseResult& r) {
  auto it = res.ref.find(r.phase + "@" + fmt_len(r.seconds) + "@" + std::to_string(r.threads));
  return it == res.ref.end() ? 0.0 : it->second;
}

}  // namespace wavtok::bench
