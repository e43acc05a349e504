// `wavtok bench`: speed and memory of encode, decode and round trip on a model (default: random weights at the
// released WavTokenizer dims), per input length and thread count; optional per-stage / per-layer profile with
// GFLOP/s against the core's measured FMA peak, and the PyTorch reference timed side by side (--baseline).
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
#include "apps/bench/bench_model.h"
#include "apps/commands.h"
#include "codec/streaming.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/util.h"
#include "models/models.h"
#include "models/vocos.h"

#include <filesystem>

#ifndef WAVTOK_BENCH_SOURCE_DIR
#define WAVTOK_BENCH_SOURCE_DIR ""
#endif

namespace wavtok {
namespace bench {
namespace {

// The measurements beyond speed that the options ask for: memory per phase (child processes), --profile,
// --streaming presets, --bf16; `model` is the 1-thread model the speed runs used.
void measure_optional(const Common& c, const BenchOpts& o, const std::vector<double>& lengths,
                      const std::vector<std::string>& phases, const std::shared_ptr<const Model>& model,
                      BenchResults& res) {
  const Model& m = *model;
  const std::shared_ptr<const Model>& one_thread_model = model;
  std::vector<MemResult>& mem = res.mem;
  if (!o.no_memory)
    for (double sec : lengths)
      for (const auto& p : phases) {
        mem.push_back(measure_memory(c, o, p, sec, res.all));
        if (!c.quiet)
          std::fprintf(stderr, "[bench] memory %-9s %7.1f s  model %.0f MiB  peak %.0f MiB\n", p.c_str(), sec,
                       mem.back().model_mib, mem.back().peak_mib);
      }

  std::optional<Profile>& prof = res.prof;
  if (o.profile) {
    set_num_threads(1);
    if (!c.quiet) std::fprintf(stderr, "[bench] profiling %.1f s on 1 thread\n", o.profile_seconds);
    prof = run_profile(m, o.profile_seconds, o.repeats);
  }

  std::vector<StreamResult>& streams = res.streams;
  if (!o.streaming.empty()) {
    set_num_threads(1);
    std::shared_ptr<const Model> causal_model;  // the realtime preset on the random-weight model: its causal variant
    for (const auto& preset : split(o.streaming)) {
      if (!c.quiet) std::fprintf(stderr, "[bench] streaming %s, %.0f s, 1 thread\n", preset.c_str(), o.stream_seconds);
      // A fresh model per preset for the warm-up figures: the shared one has already run the other passes.
      if (stream_preset(preset).require_causal && !one_thread_model->config().causal()) {
        const ModelConfig cc = causal_variant(one_thread_model->config());
        if (!causal_model) causal_model = random_wavtokenizer(cc, o.seed);
        streams.push_back(run_streaming(causal_model, preset, o.stream_seconds, random_wavtokenizer(cc, o.seed)));
        streams.back().model_note = "random weights, the causal variant of these dims (n_fft " +
                                    std::to_string(cc.vocos.n_fft) + ", attention [48, 0])";
        continue;
      }
      streams.push_back(run_streaming(one_thread_model, preset, o.stream_seconds, make_model(c, o)));
    }
  }

  std::vector<PrecisionResult>& precs = res.precs;
  if (o.bf16) {
    if (!bf16_supported()) {
      if (!c.quiet) std::fprintf(stderr, "[bench] --bf16: this CPU has no AVX512-BF16/AMX, skipped\n");
    } else {
      set_num_threads(1);
      for (double sec : lengths) {
        if (!c.quiet) std::fprintf(stderr, "[bench] float32 vs bfloat16 round trip, %.1f s, 1 thread\n", sec);
        precs.push_back(run_precision(m, sec, o.repeats));
      }
    }
  }
}

int run_bench(const Common& c, const BenchOpts& o0) {
  BenchOpts o = o0;
  if (!o.internal_mem.empty()) return internal_memory(c, o);
  const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
  const int all = o.threads > 0 ? o.threads : hw;
  std::vector<double> lengths = o.seconds > 0 ? std::vector<double>{o.seconds} : parse_list(o.lengths);
  std::vector<std::string> phases = split(o.phases);
  for (const auto& p : phases)
    if (p != "encode" && p != "decode" && p != "roundtrip") throw Error("bench: unknown phase '" + p + "'");
  for (const auto& preset : split(o.streaming)) {  // a bad preset fails before the long runs
    const StreamParams sp = stream_preset(preset);
    // A model file that looks ahead cannot run the realtime preset (the random-weight model gets a causal variant).
    if (sp.require_causal && !c.model.empty() && !o.released) check_stream_params(*make_model(c, o), sp);
  }
  if (!o.json_out.empty()) {  // an unwritable destination fails before the long runs, not after them
    const auto dir = std::filesystem::absolute(o.json_out).parent_path();
    if (!std::filesystem::is_directory(dir)) throw Error(o.json_out + ": folder " + dir.string() + " does not exist");
  }
  std::vector<int> thread_counts = {1};
  if (all > 1) thread_counts.push_back(all);

  BenchResults res;
  res.all = all;
  res.cpu = cpu_model_name();
  res.flags = cpu_relevant_flags();
  if (!c.quiet) std::fprintf(stderr, "[bench] measuring the FMA peak\n");
  res.peak = measure_fma_peak(all);

  std::shared_ptr<const Model> one_thread_model;
  std::vector<ThreadRun>& runs = res.runs;
  for (int t : thread_counts)
    runs.push_back(run_threads(c, o, t, lengths, phases, t == 1 ? &one_thread_model : nullptr));
  const Model& m = *one_thread_model;

  measure_optional(c, o, lengths, phases, one_thread_model, res);

  if (o.baseline) run_baseline(c, o, thread_counts, lengths, res);

  res.model_desc = (!c.model.empty() && !o.released) ? c.model : "random weights, released WavTokenizer dims";
  if (o.json || !o.json_out.empty()) {
    const std::string j = json_report(m, o, res);
    if (!o.json_out.empty()) {
      AtomicFile f(o.json_out);  // no partial file on failure
      if (std::fputs(j.c_str(), f.file()) < 0) throw Error(o.json_out + ": cannot write");
      f.commit();
    }
    if (o.json) {
      std::fputs(j.c_str(), stdout);
      return 0;
    }
  }
  print_report(m, o, res);
  return 0;
}

}  // namespace
}  // namespace bench

void register_bench_command(CLI::App& app, Common& common, std::vector<Command>& out) {
  using namespace bench;
  auto o = std::make_shared<BenchOpts>();
  auto* sub = app.add_subcommand(
      "bench", "speed and memory of encode / decode / round trip (default model: random weights at the released dims)");
  sub->add_option("-m,--model", common.model,
                  "model: .wtk file or checkpoint (default: random weights at the released dims)");
  sub->add_option("--config", common.config, "config.yaml for a checkpoint");
  sub->add_flag("--released-dims", o->released, "random-weight WavTokenizer at the released dims (the default)");
  sub->add_option("-t,--threads", o->threads,
                  "the 'all threads' count (default: all hardware threads); 1 thread is always run")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--seconds", o->seconds, "one input length in seconds (overrides --lengths)")
      ->check(number_in(0, kMaxSeconds, true));
  sub->add_option("--lengths", o->lengths,
                  "comma-separated input lengths in seconds (default 1,10,60; 600 works but takes long)");
  sub->add_option("--repeats", o->repeats, "warm runs per measurement, the median is reported (default 3)")
      ->check(CLI::Range(1, 1000));
  sub->add_option("--phases", o->phases, "comma-separated subset of encode,decode,roundtrip");
  sub->add_flag("--json", o->json, "print one JSON object");
  sub->add_option("--json-out", o->json_out, "also write the JSON object to this file");
  sub->add_flag("--profile", o->profile,
                "time encoder / VQ / backbone / head and each layer alone on 1 thread, with GFLOP/s");
  sub->add_option("--profile-seconds", o->profile_seconds, "input length for --profile (default 10)")
      ->check(number_in(0, kMaxSeconds, true));
  sub->add_option(
      "--streaming", o->streaming,
      "per-chunk latency of these streaming presets (e.g. low-latency,default,high-fidelity,realtime; realtime "
      "runs on a causal model: with the random-weight model, its causal variant), 1 thread: "
      "cold first pass, warm pass, and a fresh model's first pass after warm_up_streaming");
  sub->add_option("--stream-seconds", o->stream_seconds, "audio pushed per streaming preset (default 10)")
      ->check(number_in(0, kMaxSeconds, true));
  sub->add_option("--encode-chunk-frames", o->encode_chunk,
                  "encode inputs longer than 8 chunks of this many frames chunk by chunk (default: the model's, 150; "
                  "0: always in one pass)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  sub->add_flag("--bf16", o->bf16,
                "also compare float32 and bfloat16 round trips on 1 thread (time, tokens, audio SNR)");
  sub->add_flag("--baseline", o->baseline,
                "also time the PyTorch reference (python/bench_reference.py) and print ratios");
  sub->add_option("--python", o->python, "Python for --baseline (default /usr/bin/python3)");
  sub->add_option("--reference-script", o->reference_script, "path of python/bench_reference.py");
  sub->add_flag("--inherit-blas-env", o->inherit_blas_env,
                "--baseline keeps OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (by default they are unset for the PyTorch "
                "child, so OpenBLAS runs its kernel for this CPU)");
  sub->add_flag("--no-memory", o->no_memory, "skip the per-phase peak memory measurement (child processes)");
  sub->add_option("--seed", o->seed, "seed of the random weights");
  sub->add_flag("-q,--quiet", common.quiet, "no progress output");
  sub->add_option("--internal-mem", o->internal_mem, "")->group("");  // child side of the memory measurement
  out.push_back({sub, [o, &common]() { return run_bench(common, *o); }});
}

}  // namespace wavtok
