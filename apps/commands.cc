#include "apps/commands.h"

#include <cstdio>
#include <stdexcept>

namespace wavtok {

void register_eval_command(CLI::App& app, Common& common, std::vector<Command>& out);
void register_bench_command(CLI::App& app, Common& common, std::vector<Command>& out);
void register_stream_commands(CLI::App& app, Common& common, std::vector<Command>& out);
void register_quantize_commands(CLI::App& app, Common& common, std::vector<Command>& out);
void register_adapt_command(CLI::App& app, Common& common, std::vector<Command>& out);
void register_batch_command(CLI::App& app, Common& common, std::vector<Command>& out);

void add_common_options(CLI::App* sub, Common& c, const char* quiet_help) {
  sub->add_option("-m,--model", c.model,
                  "model: .wtk file, PyTorch checkpoint, or a shipped model's name: default, rt (causal; default: the "
                  "shipped default model)");
  sub->add_option("--config", c.config, "config.yaml for a checkpoint (default: config.yaml beside it)");
  sub->add_option("-t,--threads", c.threads, "CPU threads")->check(CLI::Range(1, 1024));
  sub->add_option("--precision", c.precision,
                  "f32 (default), bf16 (on CPUs with AVX512-BF16/AMX; float32 with a warning elsewhere) or f64 (the "
                  "encoder's convolutions accumulate in float64: the deep residual-VQ levels closest to upstream's "
                  "codes; slower encode)");
  sub->add_flag("-q,--quiet", c.quiet, quiet_help);
}

void add_strict_option(CLI::App* sub, Common& c) {
  sub->add_flag("--strict", c.strict,
                "refuse a truncated audio file (its header promises more samples than it holds) instead of warning");
}

Audio read_input_audio(const std::string& path, int target_rate, const Common& c) {
  Audio a = read_audio(path, target_rate, ReadOptions{.strict = c.strict});
  if (a.truncated()) std::fprintf(stderr, "wavtok: warning: %s\n", truncation_message(path, a).c_str());
  return a;
}

CLI::Validator number_in(double lo, double hi, bool lo_open) {
  char desc[96];
  std::snprintf(desc, sizeof desc, "%s%g - %g]", lo_open ? "(" : "[", lo, hi);
  const std::string range = desc;
  return CLI::Validator(
      [lo, hi, lo_open, range](std::string& s) -> std::string {
        size_t used = 0;
        double v = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != s.size()) return "'" + s + "' is not a number";
        if (!(lo_open ? v > lo : v >= lo) || !(v <= hi)) return "value " + s + " not in range " + range;
        return {};
      },
      "NUMBER in " + range);
}

// One line per group of subcommands in apps/cmd_*.cc.
void register_extra_commands(CLI::App& app, Common& common, std::vector<Command>& out) {
  register_eval_command(app, common, out);
  register_bench_command(app, common, out);
  register_stream_commands(app, common, out);
  register_quantize_commands(app, common, out);
  register_adapt_command(app, common, out);
  register_batch_command(app, common, out);
}

}  // namespace wavtok
