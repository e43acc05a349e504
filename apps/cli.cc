#include "apps/cli.h"
#include "apps/commands.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "codec/default_model.h"
#include "codec/user_input.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/progress.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "io/npy.h"
#include "io/token_file.h"
#include "models/model.h"
#include "models/models.h"

namespace wavtok {

namespace fs = std::filesystem;

namespace {

// Where an installed copy of shipped model `name` may lie: <prefix>/share/wavtok/wavtok-NAME.wtk beside the
// installed binary, or codec/NAME/wavtok-NAME.wtk of the source tree holding a build folder with the binary.
std::vector<std::string> installed_model_paths(const std::string& name) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const fs::path up = exe.parent_path().parent_path();
  return {(up / "share/wavtok" / ("wavtok-" + name + ".wtk")).string(),
          (up / "codec" / name / ("wavtok-" + name + ".wtk")).string()};
}

}  // namespace

std::string resolve_model(const Common& c) {
  // A shipped model's name (-m default, -m rt) unless a file of that name exists here.
  if (is_shipped_model_name(c.model) && !fs::exists(c.model)) return "<shipped:" + c.model + ">";
  if (!c.model.empty()) return c.model;
  if (const char* env = std::getenv("WAVTOK_MODEL"); env && *env) return env;
  if (has_embedded_default_model()) return "";  // the model built into this binary
  throw Error("no model given: pass --model FILE (a .wtk file or a checkpoint with config.yaml) or set WAVTOK_MODEL");
}

std::shared_ptr<const Model> load_model(const Common& c) {
  set_num_threads(c.threads);
  if (c.precision != "f32" && c.precision != "bf16" && c.precision != "f64")
    throw Error("--precision must be f32, bf16 or f64, not '" + c.precision + "'");
  const VqPrecision vq = parse_vq_precision(c.vq_precision);  // throws on an unknown name
  // bf16 is a speed option: on a CPU without native bf16 the command runs in float32 (the library refuses, so a
  // program that needs bf16 can tell), with a warning that -q does not silence.
  const bool want_bf16 = c.precision == "bf16", want_vq_bf16 = c.vq_precision == "bf16";
  if ((want_bf16 || want_vq_bf16) && !bf16_supported())
    std::fprintf(stderr, "wavtok: warning: %s bf16: this CPU has neither AVX512-BF16 nor AMX; running in float32\n",
                 want_bf16 ? "--precision" : "--vq-precision");
  set_precision(want_bf16 && bf16_supported() ? Precision::BF16
                : c.precision == "f64"            ? Precision::F64
                                                  : Precision::F32);
  set_vq_precision(vq == VqPrecision::BF16 && !bf16_supported() ? VqPrecision::F32 : vq);
  auto m = load_model_only(c);
  if (m->encoder_bf16_convs() && !bf16_supported())
    std::fprintf(stderr,
                 "wavtok: warning: the model asks for bf16 encoder convolutions; this CPU has neither AVX512-BF16 "
                 "nor AMX, so they run in float32 (tokens may differ slightly from the file's measured ones)\n");
  return m;
}

std::shared_ptr<const Model> load_model_only(const Common& c) {
  LoadOptions o;
  o.config_path = c.config;
  const std::string path = resolve_model(c);
  if (path.rfind("<shipped:", 0) == 0) {
    const std::string name = path.substr(9, path.size() - 10);
    return load_shipped_model(name, installed_model_paths(name));
  }
  return path.empty() ? load_embedded_default_model() : Model::load(path, o);
}

void check_output(const std::string& out, const std::vector<std::string>& inputs) {
  if (out.empty()) return;
  for (const auto& in : inputs)
    if (!in.empty() && (in == out || same_existing_file(in, out)))
      throw Error(out + ": output path is the same file as the input " + in + "; refusing to overwrite it");
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw Error(out + ": output folder " + parent.string() + " does not exist");
  if (fs::is_directory(out)) throw Error(out + ": output path is a folder");
}

void Progress::say(const std::string& what) const {
  if (!on) return;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "\r[%6.2fs] %-60s\n", s, what.c_str());
}

ProgressFn Progress::bar() const {
  if (!on) return {};
  return [t0 = t0](const char* phase, double f) {
    const int width = 30, filled = static_cast<int>(f * width + 0.5);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\r[%6.2fs] %-7s [%.*s%*s] %3d%%", s, phase, filled, "##############################",
                 width - filled, "", static_cast<int>(f * 100 + 0.5));
    std::fflush(stderr);
  };
}

namespace {}  // namespace

int n_q_from(const Model& m, double bandwidth, int n_q) { return select_n_q(m, bandwidth, n_q); }

int cli_main(int argc, char** argv) {
  CLI::App app{"wavtok: neural audio codec engine (WavTokenizer, EnCodec) on CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("wavtok ") + WAVTOK_VERSION);
  Common c;

  // The subcommands, in --help order; each group lives in its own apps/cmd_*.cc.
  std::vector<Command> commands;
  register_codec_commands(app, c, commands);  // encode, decode, requantize, roundtrip
  register_model_commands(app, c, commands);  // convert, info
  register_extra_commands(app, c, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and succeeds; a usage error (unknown or out-of-range option, missing argument) exits with 2,
    // the usual status for misuse, apart from the 1 of a failed run.
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    for (auto& cmd : commands)
      if (cmd.sub->parsed()) return cmd.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wavtok: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace wavtok
