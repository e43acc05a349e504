#include "apps/commands.h"

namespace wavtok {

void register_eval_command(CLI::App& app, Common& common, std::vector<Command>& out);
void register_bench_command(CLI::App& app, Common& common, std::vector<Command>& out);
void register_stream_commands(CLI::App& app, Common& common, std::vector<Command>& out);
void register_quantize_commands(CLI::App& app, Common& common, std::vector<Command>& out);

void add_common_options(CLI::App* sub, Common& c, const char* quiet_help) {
  sub->add_option("-m,--model", c.model, "model: .wtk file or PyTorch checkpoint (default: the shipped model)");
  sub->add_option("--config", c.config, "config.yaml for a checkpoint (default: config.yaml beside it)");
  sub->add_option("-t,--threads", c.threads, "CPU threads")->check(CLI::Range(1, 1024));
  sub->add_option("--precision", c.precision, "f32 (default) or bf16 (needs AVX512-BF16/AMX)");
  sub->add_flag("-q,--quiet", c.quiet, quiet_help);
}

// One line per group of subcommands in apps/cmd_*.cc.
void register_extra_commands(CLI::App& app, Common& common, std::vector<Command>& out) {
  register_eval_command(app, common, out);
  register_bench_command(app, common, out);
  register_stream_commands(app, common, out);
  register_quantize_commands(app, common, out);
}

}  // namespace wavtok
