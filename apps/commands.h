// Pieces shared by the CLI's subcommands. Each group of subcommands lives in its own apps/cmd_*.cc and
// registers itself in register_extra_commands() (apps/commands.cc).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/progress.h"
#include "dsp/audio_io.h"
#include "models/model.h"

namespace wavtok {

// Options every model-using command shares.
struct Common {
  std::string model;
  std::string config;
  int threads = 1;
  std::string precision = "f32";     // f32 | bf16 | f64
  std::string vq_precision = "f32";  // f32 | bf16 | int8: codebook search arithmetic (encode, roundtrip)
  bool quiet = false;
  bool strict = false;  // --strict: refuse a truncated audio file instead of warning
};

struct Command {
  CLI::App* sub = nullptr;
  std::function<int()> run;  // called when `sub` was parsed; exceptions are reported by cli_main
};

struct Progress {
  bool on = true;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  void say(const std::string& what) const;
  ProgressFn bar() const;  // a progress bar on stderr, or an empty callback when off
};

// -m/--model, --config, -t/--threads, --precision and -q/--quiet, as every model-using command takes them.
void add_common_options(CLI::App* sub, Common& c, const char* quiet_help = "no progress output");

// --strict, for the commands that read audio files.
void add_strict_option(CLI::App* sub, Common& c);
// read_audio for a command's input: a truncated file is refused under c.strict, else read with a warning on stderr
// naming both sample counts (-q does not silence it: audio is missing).
Audio read_input_audio(const std::string& path, int target_rate, const Common& c);

std::string resolve_model(const Common& c);
std::shared_ptr<const Model> load_model(const Common& c);  // also applies c.threads
// The model -m names (a file, a shipped model's name such as "rt", $WAVTOK_MODEL or the embedded default), loaded
// without touching the thread count or the precision (wavtok bench sets those per run).
std::shared_ptr<const Model> load_model_only(const Common& c);
// Refuses an output that is one of the inputs, a folder, or inside a missing folder.
void check_output(const std::string& out, const std::vector<std::string>& inputs);
// A range check for a number option that, unlike CLI::Range, refuses NaN (and "inf"); with `lo_open`, lo itself
// is refused too (e.g. a duration must be > 0).
CLI::Validator number_in(double lo, double hi, bool lo_open = false);
// The checks of the options several commands share.
inline CLI::Validator bandwidth_kbps() { return number_in(0, 1e6, true); }
inline CLI::Range n_q_range() { return CLI::Range(1, 65536); }
// --bandwidth / --n-q to a number of codebooks (all when neither is given).
int n_q_from(const Model& m, double bandwidth, int n_q);

// The subcommand groups: apps/cmd_codec.cc (encode, decode, requantize, roundtrip), apps/cmd_model.cc (convert,
// info), and the rest through register_extra_commands (apps/commands.cc).
void register_codec_commands(CLI::App& app, Common& common, std::vector<Command>& out);
void register_model_commands(CLI::App& app, Common& common, std::vector<Command>& out);
void register_extra_commands(CLI::App& app, Common& common, std::vector<Command>& out);

}  // namespace wavtok
