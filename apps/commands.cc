#include "apps/commands.h"

namespace wavtok {

void register_eval_command(CLI::App& app, Common& common, std::vector<Command>& out);
void register_bench_command(CLI::App& app, Common& common, std::vector<Command>& out);
void register_stream_commands(CLI::App& app, Common& common, std::vector<Command>& out);
void register_quantize_commands(CLI::App& app, Common& common, std::vector<Command>& out);

// One line per group of subcommands in apps/cmd_*.cc.
void register_extra_commands(CLI::App& app, Common& common, std::vector<Command>& out) {
  register_eval_command(app, common, out);
  register_bench_command(app, common, out);
  register_stream_commands(app, common, out);
  register_quantize_commands(app, common, out);
}

}  // namespace wavtok
