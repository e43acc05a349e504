// `wavtok batch INPUTS... -o OUTDIR`: tokenize a corpus with one model and several worker threads. The work is in
// the library (codec/batch.h: per-file tokenization, manifest, resume), which the Python package and the Dask
// driver share; this file parses options, shows progress and prints the summary.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "apps/commands.h"
#include "codec/batch.h"
#include "core/error.h"

namespace wavtok {
namespace {

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  char b[32];
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
  else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%lds", t);
  return b;
}

// One status line, redrawn in place: bar, files, audio, throughput and ETA (from the input bytes still to do).
void draw_bar(const batch::Progress& p) {
  const size_t todo = p.total - p.skipped;
  const size_t did = p.done - p.skipped;
  const double f = todo ? double(did) / double(todo) : 1.0;
  const int width = 24, filled = static_cast<int>(f * width + 0.5);
  const double byte_f = p.bytes_total ? double(p.bytes_done) / double(p.bytes_total) : f;
  const double eta = byte_f > 0 ? p.elapsed_s * (1 - byte_f) / byte_f : NAN;
  const double rate = p.elapsed_s > 0 ? p.audio_s / p.elapsed_s : 0;
  std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu files, %zu failed, %.2f h audio, %.0fx real time, ETA %s   ", filled,
               "########################", width - filled, "", p.done, p.total, p.failed, p.audio_s / 3600, rate,
               did == 0 ? "?" : hms(eta).c_str());
  std::fflush(stderr);
}

}  // namespace

void register_batch_command(CLI::App& app, Common& common, std::vector<Command>& out) {
  struct Opts {
    std::vector<std::string> inputs, lists;
    std::string outdir;
    int jobs = 0, n_q = 0;
    double bandwidth = 0;
    bool progress = false, retry_failed = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "batch",
      "tokenize many audio files: one .wtt per input plus OUTDIR/manifest.jsonl; resumes where an interrupted run "
      "stopped, reports bad files and goes on");
  sub->add_option("inputs", o->inputs,
                  "audio files, folders (searched recursively for audio extensions) or @LIST (a file with one path "
                  "per line)");
  sub->add_option("--list", o->lists, "a file with one input path per line (may be repeated)")->allow_extra_args(false);
  sub->add_option("-o,--output", o->outdir, "output folder (created); outputs mirror the inputs' relative paths")
      ->required();
  sub->add_option("-j,--jobs", o->jobs, "files encoded at once, each on its own thread (default: all cores)")
      ->check(CLI::Range(1, 4096));
  sub->add_option("-b,--bandwidth", o->bandwidth, "bandwidth in kbps (selects the number of codebooks)")
      ->check(bandwidth_kbps());
  sub->add_option("-n,--n-q", o->n_q, "number of codebooks (default: all)")->check(n_q_range());
  sub->add_flag("--progress", o->progress, "show the progress bar even when stderr is not a terminal");
  sub->add_flag("--retry-failed", o->retry_failed, "try again the inputs that failed in an earlier run");
  add_common_options(sub, common, "no progress bar and no summary");
  add_strict_option(sub, common);
  sub->get_option("--threads")
      ->description("oneDNN threads per job (default: cores / jobs, at least 1, so that jobs x threads <= cores)");
  out.push_back(
      {sub, [o, sub, &common]() {
         if (o->inputs.empty() && o->lists.empty())
           throw Error("batch: give input files, folders, @LIST or --list FILE");
         const int cores = std::max(1u, std::thread::hardware_concurrency());
         batch::RunOptions ro;
         ro.jobs = o->jobs > 0 ? o->jobs : cores;
         ro.threads_per_job = sub->count("--threads") ? common.threads : std::max(1, cores / ro.jobs);
         ro.file.strict = common.strict;
         ro.retry_failed = o->retry_failed;
         const auto jobs = batch::collect_jobs(o->inputs, o->lists);
         common.threads = ro.threads_per_job;
         auto model = load_model(common);
         ro.file.n_q = n_q_from(*model, o->bandwidth, o->n_q);
         const bool bar = !common.quiet && (o->progress || ::isatty(STDERR_FILENO));
         if (!common.quiet)
           std::fprintf(stderr,
                        "wavtok batch: %zu input files, %d jobs x %d threads, model %016llx, %d codebooks -> %s\n",
                        jobs.size(), ro.jobs, ro.threads_per_job, static_cast<unsigned long long>(model->fingerprint()),
                        ro.file.n_q, o->outdir.c_str());
         batch::ProgressCallback cb;
         if (bar) cb = [](const batch::Progress& p, const batch::Record*) { draw_bar(p); };
         // Truncated inputs that were tokenized anyway get a warning, which -q does not silence: audio is missing (in
         // strict mode they fail instead).
         auto with_warnings = [cb](const batch::Progress& p, const batch::Record* r) {
           if (r && r->ok && r->truncated()) {
             std::fprintf(stderr,
                          "\rwavtok: warning: %s: truncated: the header promises %lld samples (per channel), the "
                          "file holds %lld\n",
                          r->input.c_str(), static_cast<long long>(r->samples_promised),
                          static_cast<long long>(r->samples));
           }
           if (cb) cb(p, r);
         };
         const batch::Summary s = batch::run_batch(model, jobs, o->outdir, ro, with_warnings);
         if (bar) std::fprintf(stderr, "\n");
         if (!common.quiet) {
           for (const auto& f : s.failures) std::fprintf(stderr, "failed: %s\n", f.error.c_str());
           std::printf(
               "files: %zu ok, %zu failed, %zu skipped (%zu done earlier, %zu failed earlier) of %zu\n"
               "audio tokenized: %.4f h in %s wall time: %.1f audio hours per hour\n",
               s.ok, s.failed, s.skipped_done + s.skipped_failed, s.skipped_done, s.skipped_failed, s.files,
               s.audio_s / 3600, hms(s.wall_s).c_str(), s.audio_hours_per_hour());
           if (s.failed + s.skipped_failed > 0) std::printf("failures listed in %s/failures.tsv\n", o->outdir.c_str());
           std::fflush(stdout);
         }
         // 3: the run completed, but some inputs failed (1 is an error that stopped the run, 2 a usage error).
         return s.failed + s.skipped_failed > 0 ? 3 : 0;
       }});
}

}  // namespace wavtok
