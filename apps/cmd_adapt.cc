// `wavtok adapt MODEL --audio DIR -o NEW.wtk`: the model's codebooks adapted to new audio (codec/adapt.h,
// docs/ADAPT.md), with the latent quantization error, the mel distance and how old tokens decode, before and after.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/commands.h"
#include "codec/adapt.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "io/token_file.h"

namespace wavtok {
namespace {

struct Clips {
  std::vector<std::string> files;
  std::vector<std::vector<float>> audio;
  std::vector<Tensor> latents;
  double seconds = 0;
};

std::vector<std::string> list_audio(const std::string& dir, const char* what) {
  namespace fs = std::filesystem;
  if (!fs::exists(dir)) throw Error(dir + ": " + what + " folder not found");
  if (!fs::is_directory(dir)) throw Error(dir + ": " + what + " path is not a folder");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".wav" || ext == ".flac" || ext == ".ogg")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(dir + ": no .wav/.flac/.ogg files in the " + std::string(what) + " folder");
  return files;
}

// Reads and encodes the clips of a folder (at most max_clips, each cut to max_seconds).
Clips load_clips(const Model& m, const std::string& dir, const char* what, int max_clips, double max_seconds,
                 const Progress& prog) {
  Clips c;
  c.files = list_audio(dir, what);
  if (int(c.files.size()) > max_clips) c.files.resize(size_t(max_clips));
  ProgressScope ps(prog.bar());
  for (size_t i = 0; i < c.files.size(); ++i) {
    const std::string& f = c.files[i];
    Audio a = read_audio(f, m.sample_rate());
    a.samples.resize(std::min(a.samples.size(), size_t(max_seconds * m.sample_rate())));
    if (a.samples.size() < size_t(m.hop()) * 8)
      throw Error(f + ": too short to adapt on (" + std::to_string(a.samples.size()) + " samples; at least " +
                  std::to_string(m.hop() * 8) + ")");
    check_finite_audio(a.samples.data(), int64_t(a.samples.size()), f);
    {
      ProgressScope inner([](const char*, double) {});  // one bar for the folder, not one per clip
      c.latents.push_back(m.encode_latents(a.samples.data(), int64_t(a.samples.size())));
    }
    c.seconds += double(a.samples.size()) / m.sample_rate();
    c.audio.push_back(std::move(a.samples));
    report_progress(what, double(i + 1) / double(c.files.size()));
  }
  return c;
}

std::vector<int> parse_levels(const std::string& s) {
  std::vector<int> out;
  if (s.empty() || s == "all") return out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != part.size() || v < 0)
      throw Error("--levels: '" + part + "' is not a codebook level (0, 1, ...)");
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  return out;
}

struct SetReport {
  AdaptQuality before, after;
  TokenDecodeQuality old_by_parent, old_by_child, unquantized;
};

SetReport evaluate(const Model& parent, const Model& child, const Clips& c, int nq, int bwid) {
  SetReport r;
  r.before = measure_quality(parent, c.audio, c.latents, nq, bwid);
  r.after = measure_quality(child, c.audio, c.latents, nq, bwid);
  std::vector<Tokens> old;  // what the parent stored for this audio
  for (const Tensor& z : c.latents) old.push_back(parent.quantize(z, nq));
  r.old_by_parent = decode_quality(parent, old, c.audio, bwid);
  r.old_by_child = decode_quality(child, old, c.audio, bwid);
  r.unquantized = unquantized_quality(parent, c.latents, c.audio, bwid);
  return r;
}

void print_report(const char* name, const Clips& c, const SetReport& r) {
  auto pct = [](double a, double b) { return a != 0 ? 100.0 * (b - a) / a : 0.0; };
  std::printf("%s: %zu clips, %.1f s, %lld frames\n", name, c.files.size(), c.seconds, (long long)r.before.frames);
  std::printf("  latent MSE        %10.5f -> %10.5f  (%+.1f %%)\n", r.before.latent_mse, r.after.latent_mse,
              pct(r.before.latent_mse, r.after.latent_mse));
  std::printf("  mel distance      %10.4f -> %10.4f  (%+.4f)\n", r.before.mel, r.after.mel, r.after.mel - r.before.mel);
  std::printf("  STOI              %10.4f -> %10.4f  (%+.4f)\n", r.before.stoi, r.after.stoi,
              r.after.stoi - r.before.stoi);
  std::printf(
      "  old tokens: STOI  %10.4f -> %10.4f  (%+.4f)   mel %.4f -> %.4f  (decoded by the parent -> by the "
      "adapted model)\n",
      r.old_by_parent.stoi, r.old_by_child.stoi, r.old_by_child.stoi - r.old_by_parent.stoi, r.old_by_parent.mel,
      r.old_by_child.mel);
  std::printf("  no quantization:  STOI %.4f, mel %.4f  (the latents decoded as they are, without a codebook)\n",
              r.unquantized.stoi, r.unquantized.mel);
  // Centroids move toward the latents; where the decoder turns the latents themselves into worse audio than the
  // codewords, that cannot be expected to lower the mel distance (docs/ADAPT.md, v7 on unseen instruments).
  if (r.unquantized.mel >= r.before.mel)
    std::printf("  note: the parent decodes its codewords at least as well as the latents themselves here (mel %.4f "
                "vs %.4f); a codebook update is unlikely to improve the mel distance of this audio\n",
                r.before.mel, r.unquantized.mel);
}

}  // namespace

void register_adapt_command(CLI::App& app, Common& common, std::vector<Command>& out) {
  struct Opts {
    std::string audio, output, levels, limit = "cell";
    std::vector<std::string> evals;
    int iterations = 10;
    double anchor = 4.0, radius = 0.5;
    double bandwidth = 0;
    int n_q = 0, bandwidth_id = 0, max_clips = 10000;
    double max_seconds = 600;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "adapt",
      "adapt a model's codebooks to new audio (anchored Lloyd steps, DeDrift-style) -> .wtk whose tokens stay "
      "compatible with the parent's (docs/ADAPT.md)");
  sub->add_option("model", common.model, "model to adapt (.wtk or checkpoint; default: the shipped model)");
  sub->add_option("--config", common.config, "config.yaml for a checkpoint");
  sub->add_option("--audio", o->audio, "folder of audio to adapt to (.wav/.flac/.ogg, any rate)")->required();
  sub->add_option("-o,--output", o->output, "adapted model file (.wtk)")->required();
  sub->add_option("--eval", o->evals, "folder of held-out audio: before/after figures on it too (may be repeated)");
  sub->add_option("--iterations", o->iterations, "Lloyd steps per codebook (default 10)")->check(CLI::Range(0, 10000));
  sub->add_option("--anchor", o->anchor,
                  "weight of the old centroid, in frames: a code seen this often moves half way to its data's mean "
                  "(default 4)")
      ->check(number_in(0, 1e12));
  sub->add_option("--radius", o->radius,
                  "largest move of a centroid: the fraction of the way to its old cell's boundary (--limit cell; < 1 "
                  "keeps every code inside its cell) or of half the distance to its nearest neighbour (--limit ball; "
                  "<= 1 does) (default 0.5)")
      ->check(number_in(0, 1e6));
  sub->add_option("--limit", o->limit,
                  "cell (default): a centroid moves at most --radius of the way to its old cell's boundary in the "
                  "direction it moves; ball: at most --radius x half the distance to its nearest neighbour")
      ->check(CLI::IsMember({"ball", "cell"}));
  sub->add_option("--levels", o->levels,
                  "codebooks (RVQ levels) to adapt, comma-separated, e.g. 0,1 (default: all that encoding uses)");
  sub->add_option("-b,--bandwidth", o->bandwidth, "EnCodec-format models: encode at this bandwidth (kbps)")
      ->check(bandwidth_kbps());
  sub->add_option("-n,--n-q", o->n_q, "codebooks used to encode (default: all)")->check(n_q_range());
  sub->add_option("--bandwidth-id", o->bandwidth_id, "WavTokenizer bandwidth id when decoding (default 0)")
      ->check(CLI::Range(0, 1024));
  sub->add_option("--max-clips", o->max_clips, "clips used from each folder, in name order (default 10000)")
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--max-seconds", o->max_seconds, "seconds used from each clip (default 600)")
      ->check(number_in(0.1, 1e6));
  sub->add_option("-t,--threads", common.threads, "CPU threads")->check(CLI::Range(1, 1024));
  sub->add_flag("-q,--quiet", common.quiet, "no progress output");
  out.push_back(
      {sub, [o, &common]() {
         check_output(o->output, {common.model});
         const std::vector<int> levels = parse_levels(o->levels);
         Progress prog;
         prog.on = !common.quiet;
         auto parent = load_model(common);
         const int nq = n_q_from(*parent, o->bandwidth, o->n_q);
         if (o->bandwidth_id >= std::max(1, parent->config().vocos.adanorm_num_embeddings) &&
             parent->config().arch == Arch::WavTokenizer)
           throw Error("--bandwidth-id " + std::to_string(o->bandwidth_id) + " is out of range for this model");
         prog.say("encoding the adaptation audio in " + o->audio);
         const Clips train = load_clips(*parent, o->audio, "adaptation audio", o->max_clips, o->max_seconds, prog);
         std::vector<Clips> held;
         for (const auto& dir : o->evals) {
           prog.say("encoding the held-out audio in " + dir);
           held.push_back(load_clips(*parent, dir, "held-out audio", o->max_clips, o->max_seconds, prog));
         }
         AdaptOptions ao;
         ao.codebook.iterations = o->iterations;
         ao.codebook.anchor = o->anchor;
         ao.codebook.radius = o->radius;
         ao.codebook.limit = o->limit == "cell" ? MoveLimit::Cell : MoveLimit::Ball;
         ao.levels = levels;
         ao.n_q = nq;
         AdaptResult res;
         {
           ProgressScope ps(prog.bar());
           res = adapt_model(*parent, train.latents, ao);
         }
         for (const auto& l : res.levels)
           prog.say("codebook " + std::to_string(l.level) + ": " + std::to_string(l.stats.steps) + " steps, " +
                    std::to_string(l.stats.codes_used) + " codes used, " + std::to_string(l.stats.codes_capped) +
                    " held by the radius");
         SetReport tr;
         std::vector<SetReport> ev;
         {
           ProgressScope ps(prog.bar());
           tr = evaluate(*parent, *res.model, train, nq, o->bandwidth_id);
           for (const Clips& h : held) ev.push_back(evaluate(*parent, *res.model, h, nq, o->bandwidth_id));
         }
         write_model_file(o->output, res.config, res.weights);
         std::printf(
             "parent %s -> adapted %s (%d codebook(s) of %d used; iterations %d, anchor %g, radius %g, limit %s)\n",
             fingerprint_str(parent->fingerprint()).c_str(), fingerprint_str(res.model->fingerprint()).c_str(),
             int(res.levels.size()), nq, o->iterations, o->anchor, o->radius, o->limit.c_str());
         for (const auto& l : res.levels)
           std::printf(
               "codebook %d: residual MSE %.5f -> %.5f, %lld codes used, %lld held by the radius, mean move %.3f "
               "(max %.3f) of the half-distance to the nearest code\n",
               l.level, l.stats.mse_before, l.stats.mse_after, (long long)l.stats.codes_used,
               (long long)l.stats.codes_capped, l.stats.mean_move, l.stats.max_move);
         print_report(("adaptation audio " + o->audio).c_str(), train, tr);
         for (size_t i = 0; i < held.size(); ++i)
           print_report(("held-out audio " + o->evals[i]).c_str(), held[i], ev[i]);
         prog.say("wrote " + o->output);
         return 0;
       }});
}

}  // namespace wavtok
