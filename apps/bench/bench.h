// `wavtok bench` (apps/bench/): what its parts share. bench_command.cc runs a bench (the options, the order of the
// measurements); measure.cc times phases, threads, memory, streaming and bf16; profile.cc times the stages and layers;
// baseline.cc runs the PyTorch reference; report.cc prints the table or the JSON object. bench_model.h: the random
// model, the layer costs and the FMA peak.
#pragma once

#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/bench/bench_model.h"
#include "apps/commands.h"
#include "codec/streaming.h"
#include "models/model.h"

namespace wavtok::bench {

// printf into a std::string of any length (JSON lines carry user-given names, e.g. a preset's file path).
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

using Clock = std::chrono::steady_clock;
double secs_since(Clock::time_point t0);
// CPU time of the calling thread in ms: the compute of a call, without the time other processes took the core
// (on a loaded machine wall-clock times of short calls mostly measure preemption). 1-thread runs only.
double thread_cpu_ms();

struct BenchOpts {
  bool released = false;
  int threads = 0;  // 0: all hardware threads
  double seconds = 0;
  std::string lengths = "1,10,60";
  int repeats = 3;
  bool json = false;
  std::string json_out;
  bool profile = false;
  double profile_seconds = 10;
  bool baseline = false;
  bool no_memory = false;
  uint64_t seed = 1234;
  std::string phases = "encode,decode,roundtrip";
  std::string streaming;  // comma-separated presets (or YAML files) for per-chunk latency
  bool bf16 = false;      // float32 vs bfloat16 round trip, interleaved, 1 thread
  double stream_seconds = 10;
  int64_t encode_chunk = -1;  // Model::set_encode_chunk_frames; -1: the model's default, 0: always one pass
  std::string python = "/usr/bin/python3";
  std::string reference_script;
  bool inherit_blas_env = false;  // --baseline with this process's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
  // hidden: one memory measurement in this (child) process
  std::string internal_mem;
};

constexpr double kMaxSeconds = 3600;  // longest input a bench run makes

struct PhaseResult {
  std::string phase;
  double seconds = 0;  // audio length
  int threads = 1;
  double first_s = 0;   // first (cold) call: includes oneDNN primitive creation for this length
  double median_s = 0;  // warm, median of repeats
  double min_s = 0;
  double xrt() const { return median_s > 0 ? seconds / median_s : 0; }
};

struct MemResult {
  std::string phase;
  double seconds = 0;
  double model_mib = 0;  // RSS after building the model and the input, before the phase
  double peak_mib = 0;   // VmHWM during the phase
};

struct StageResult {
  std::string stage;
  double s = 0;
  double macs = 0;
};

struct LayerResult {
  LayerCost l;
  double s = 0;  // all `count` layers
};

struct ThreadRun {
  int threads = 1;
  double one_frame_encode_s = 0, one_frame_decode_s = 0;
  std::vector<PhaseResult> phases;
};

struct Profile {
  double seconds = 0;
  std::vector<StageResult> stages;
  std::vector<LayerResult> layers;
};

struct StreamResult {
  std::string preset;
  StreamParams p;
  double chunk_audio_ms = 0;                                                            // audio per block
  double enc_p50 = 0, enc_p95 = 0, enc_p99 = 0, dec_p50 = 0, dec_p95 = 0, dec_p99 = 0;  // ms per push
  int64_t chunks = 0;
  double cold_enc_p99 = 0, cold_dec_p99 = 0, cold_enc_max = 0, cold_dec_max = 0;  // first pass (primitive creation)
  // A fresh model warmed up with warm_up_streaming, then its first pass (empty without a fresh model).
  double warm_up_ms = 0;
  int64_t warm_up_shapes = 0;
  double after_enc_p99 = 0, after_dec_p99 = 0, after_enc_max = 0, after_dec_max = 0;
  // flush() at the end of the stream (ms): the time from the last token to the last audio; [cold, warm, after warm-up].
  double enc_flush[3] = {0, 0, 0}, dec_flush[3] = {0, 0, 0};
  // A live stream (warm): audio arriving in real time in 20 ms chunks, codes passed on as soon as they are final.
  // Time from the stream's first sample to the first code / first decoded sample leaving: the audio that had to
  // arrive (algorithmic latency plus the chunk) plus the compute of the push that produced it.
  double first_token_ms = 0, first_audio_ms = 0, first_token_audio_ms = 0, first_audio_audio_ms = 0;
  // Algorithmic latency: a causal model's closed form (causal_latency_samples), else block + lookahead frames.
  double latency_ms = 0;
  bool exact = false;  // a layer-wise exact decoder: the live stream then runs to the end, timing every chunk
  double live_p50 = 0, live_p99 = 0, live_max = 0;  // ms of encode + decode per live 20 ms chunk (wall clock)
  double live_cpu_p50 = 0, live_cpu_p99 = 0, live_cpu_max = 0;  // the same in thread CPU time
  std::string model_note;  // set when the preset ran on another model than the bench's (realtime: causal variant)
};

// float32 vs bfloat16 on 1 thread, one input length: round trips timed alternately (so load changes hit both),
// tokens and decoded audio compared with the float32 ones.
struct PrecisionResult {
  double seconds = 0, f32_s = 0, bf16_s = 0, token_agree = 0, snr_db = 0;
};

// Everything one bench run measured, for the report.
struct BenchResults {
  std::string model_desc;
  int all = 1;  // the "all threads" count
  std::string cpu;
  std::vector<std::string> flags;
  FmaPeak peak;
  std::vector<ThreadRun> runs;
  std::vector<MemResult> mem;
  std::optional<Profile> prof;
  std::vector<StreamResult> streams;
  std::vector<PrecisionResult> precs;
  std::map<std::string, double> ref;  // the baseline's seconds per "phase@seconds@threads"
  std::string ref_json;               // the baseline's whole object ("null" when it failed)
  std::string ref_core = "?";         // the OpenBLAS kernel the baseline ran (openblas_get_corename)
};

// measure.cc
std::vector<float> bench_audio(int64_t samples, int rate);
std::vector<double> parse_list(const std::string& s);
std::vector<std::string> split(const std::string& s);
std::shared_ptr<const Model> make_model(const Common& c, const BenchOpts& o);
double median(std::vector<double> v);
Tokens random_tokens(const Model& m, int64_t frames, int n_q);
PhaseResult time_phase(const std::string& name, double sec, int threads, int repeats, const std::function<void()>& fn);
ThreadRun run_threads(const Common& c, const BenchOpts& o, int threads, const std::vector<double>& lengths,
                      const std::vector<std::string>& phases, std::shared_ptr<const Model>* keep);
std::string self_exe();
std::string shell_quote(const std::string& s);
std::string run_capture(const std::string& cmd);
int internal_memory(const Common& c, const BenchOpts& o);
MemResult measure_memory(const Common& c, const BenchOpts& o, const std::string& phase, double sec, int threads);
StreamResult run_streaming(const std::shared_ptr<const Model>& model, const std::string& preset, double seconds,
                           const std::shared_ptr<const Model>& fresh = nullptr);
PrecisionResult run_precision(const Model& m, double sec, int repeats);

// profile.cc
Profile run_profile(const Model& m, double sec, int repeats);

// baseline.cc: times the PyTorch reference (python/bench_reference.py) for the same lengths, threads and phases into
// res.ref / res.ref_json; a failing baseline is reported and keeps the engine's results.
void run_baseline(const Common& c, const BenchOpts& o, const std::vector<int>& thread_counts,
                  const std::vector<double>& lengths, BenchResults& res);
double reference_s(const BenchResults& res, const PhaseResult& r);  // 0 when the baseline has no such figure

// report.cc
std::string json_str(const std::string& s);
std::string fmt_len(double s);
std::string json_report(const Model& m, const BenchOpts& o, const BenchResults& res);
void print_report(const Model& m, const BenchOpts& o, const BenchResults& res);

}  // namespace wavtok::bench
