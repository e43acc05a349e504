// `wavtok quantize`: post-training int8 quantization of a model's convs and dense layers (decoder, and the
// SEANet encoder when the recipe says so) from a few calibration clips and a YAML recipe (configs/quant/*.yaml,
// docs/PTQ.md). `wavtok ptq-speed`: encode and decode time of several models on
// the same input, measured side by side (interleaved) in one run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "apps/commands.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "models/models.h"
#include "models/quantized.h"
#include "ptq/calibrate.h"
#include "vq/rvq.h"

namespace wavtok {
namespace {

std::vector<std::string> audio_files(const std::string& dir, int max_files) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw Error(dir + ": calibration folder not found");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".wav" || ext == ".flac" || ext == ".ogg")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(dir + ": no .wav/.flac/.ogg files to calibrate on");
  if (int(files.size()) > max_files) files.resize(max_files);
  return files;
}

}  // namespace

void register_quantize_commands(CLI::App& app, Common& common, std::vector<Command>& out) {
  struct Opts {
    std::string calib, recipe, output;
    int max_clips = 16;
    double max_seconds = 10;
    bool verbose = false;
    std::vector<std::string> models;
    double seconds = 10;
    int repeats = 5;
    bool unfused = false;
    std::string int8_vq;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("quantize", "post-training int8 quantization (calibrate + recipe) -> .wtk");
  sub->add_option("model", common.model, "float model (.wtk or checkpoint; default: the shipped model)");
  sub->add_option("--config", common.config, "config.yaml for a checkpoint");
  sub->add_option("--calib", o->calib, "folder of calibration audio (.wav/.flac/.ogg)")->required();
  std::string built_in;
  for (const auto& r : builtin_recipes()) built_in += (built_in.empty() ? "" : ", ") + std::string(r.name);
  sub->add_option("--recipe", o->recipe,
                  "quantization recipe: a YAML file, or the name of a built-in one (the files of configs/quant/: " +
                      built_in + ")")
      ->required();
  sub->add_option("-o,--output", o->output, "quantized model file (.wtk)")->required();
  sub->add_option("--max-clips", o->max_clips, "calibration clips used, in name order (default 16)")
      ->check(CLI::Range(1, 100000));
  sub->add_option("--max-seconds", o->max_seconds, "seconds used from each clip (default 10)")
      ->check(number_in(0.1, 3600.0));
  sub->add_option("-t,--threads", common.threads, "CPU threads")->check(CLI::Range(1, 1024));
  sub->add_flag("-v,--verbose", o->verbose,
                "print each layer's bits, transform and calibration error (and GPTQ's output errors)");
  sub->add_flag("-q,--quiet", common.quiet, "no progress output");
  out.push_back({sub, [o, &common]() {
                   check_output(o->output, {common.model, o->recipe});
                   Progress prog;
                   prog.on = !common.quiet;
                   const PtqRecipe recipe = load_recipe(o->recipe);
                   auto model = load_model(common);
                   if (has_int8_layers(model->weights())) throw Error(common.model + ": model is already quantized");
                   model = prepare_for_recipe(model, recipe);  // Hadamard rotations folded (hadamard: true)
                   std::vector<std::vector<float>> clips;
                   for (const auto& f : audio_files(o->calib, o->max_clips)) {
                     Audio a = read_audio(f, model->sample_rate());
                     const size_t keep = std::min(a.samples.size(), size_t(o->max_seconds * model->sample_rate()));
                     if (keep < size_t(model->hop()) * 8) continue;  // too short to say anything
                     a.samples.resize(keep);
                     clips.push_back(std::move(a.samples));
                   }
                   if (clips.empty()) throw Error(o->calib + ": no calibration clip is long enough");
                   prog.say("calibrating on " + std::to_string(clips.size()) + " clips");
                   const auto moments = moment_layers(recipe);  // weight_rounding: gptq
                   CalibStats st = calibrate(*model, clips, recipe.bandwidth_id, recipe.max_rows, moments);
                   std::vector<PtqLayerReport> rep;
                   WeightMap w = apply_recipe(*model, recipe, st, &rep);
                   write_model_file(o->output, model->config(), w);
                   int64_t q8 = 0, total = model->parameter_count();
                   int layers = 0;
                   for (const auto& r : rep)
                     if (r.weights > 0) {  // the post-softmax quantizer has an entry without weights
                       q8 += r.weights;
                       ++layers;
                     }
                   if (o->verbose)
                     for (const auto& r : rep) {
                       if (r.group_size > 0)
                         std::fprintf(stderr, "%-40s W%.2f (g%lld, max %d) %-6s alpha=%.2f rel_mse=%.3e\n",
                                      r.name.c_str(), r.avg_bits, static_cast<long long>(r.group_size), r.weight_bits,
                                      r.transform.c_str(), r.alpha, r.rel_mse);
                       else
                         std::fprintf(stderr, "%-40s W%d %-5s alpha=%.2f rel_mse=%.3e\n", r.name.c_str(), r.weight_bits,
                                      r.transform.c_str(), r.alpha, r.rel_mse);
                       if (r.gptq_error_nearest > 0)
                         std::fprintf(stderr, "%-42s GPTQ: output error %.2f dB (rounding to nearest) -> %.2f dB\n", "",
                                      10 * std::log10(r.gptq_error_nearest), 10 * std::log10(r.gptq_error + 1e-30));
                     }
                   double code_bits = 0;  // average code bits over the quantized weights (low-bit: per group)
                   for (const auto& r : rep)
                     if (r.weights > 0) code_bits += double(r.weights) * (r.group_size > 0 ? r.avg_bits : 8.0);
                   char avg[64];
                   std::snprintf(avg, sizeof avg, ", %.3f average weight bits", q8 ? code_bits / double(q8) : 0.0);
                   prog.say("wrote " + o->output + ": " + std::to_string(layers) + " int8 layers, " +
                            std::to_string(q8) + " of " + std::to_string(total) + " parameters" + avg +
                            (recipe.softmax == "none" ? std::string()
                                                      : ", post-softmax " + recipe.softmax + " " +
                                                            std::to_string(recipe.softmax_bits) + "-bit"));
                   return 0;
                 }});

  auto* sp = app.add_subcommand(
      "ptq-speed", "encode and decode time of models on the same noise / random-token latent, side by side (JSON)");
  sp->add_option("models", o->models, "model files (.wtk)")->required();
  sp->add_option("--seconds", o->seconds, "audio length decoded (default 10)")->check(number_in(0.1, 600.0));
  sp->add_option("--repeats", o->repeats, "interleaved rounds; the median is reported (default 5)")
      ->check(CLI::Range(1, 1000));
  sp->add_option("-t,--threads", common.threads, "CPU threads (default 1)")->check(CLI::Range(1, 1024));
  sp->add_flag("--unfused", o->unfused,
               "also time every quantized model with its int8 layers unchained (each quantizing its float input "
               "and dequantizing its output, as before int8 was kept between layers), labelled 'MODEL (unfused)'");
  sp->add_option("--int8-vq", o->int8_vq,
                 "codebook search precision of the quantized models' encode: f32, bf16 or int8 (exact at every "
                 "precision: the same tokens; default: each model's own, int8 where its file asks for it, as the "
                 "int8-e2e recipe does); float models search in f32")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  out.push_back(
      {sp, [o, &common]() {
         std::vector<std::shared_ptr<const Model>> ms;
         std::vector<std::string> labels;
         for (const auto& p : o->models) {
           Common c = common;
           c.model = p;
           ms.push_back(load_model(c));
           labels.push_back(p);
           if (o->unfused && has_int8_layers(ms.back()->weights())) {
             set_int8_chaining(false);
             try {
               ms.push_back(load_model(c));
             } catch (...) {
               set_int8_chaining(true);
               throw;
             }
             set_int8_chaining(true);
             labels.push_back(p + " (unfused)");
           }
         }
         const VqPrecision vq_default = get_vq_precision();
         const VqPrecision vq_int8 = o->int8_vq.empty() ? vq_default : parse_vq_precision(o->int8_vq);
         std::vector<VqPrecision> vq(ms.size());
         for (size_t i = 0; i < ms.size(); ++i) vq[i] = has_int8_layers(ms[i]->weights()) ? vq_int8 : vq_default;
         for (const auto& m : ms)
           if (m->config().to_yaml() != ms[0]->config().to_yaml())
             throw Error("ptq-speed: models have different configs");
         const Model& m0 = *ms[0];
         Tokens t;
         t.n_q = m0.max_n_q();
         t.frames = std::max<int64_t>(1, int64_t(o->seconds * m0.sample_rate() / m0.hop()));
         std::mt19937 rng(1);
         for (int64_t i = 0; i < t.n_q * t.frames; ++i)
           t.codes.push_back(int32_t(rng() % uint32_t(m0.config().quantizer.bins)));
         const Tensor lat = m0.dequantize(t);
         // encoder input: white noise at -20 dBFS RMS, as long as the decoded audio
         std::vector<float> pcm(size_t(t.frames * m0.hop()));
         std::normal_distribution<float> noise(0.0f, 0.1f);
         for (auto& x : pcm) x = std::clamp(noise(rng), -1.0f, 1.0f);
         std::vector<std::vector<double>> dec_times(ms.size()), enc_times(ms.size());
         const auto seconds_since = [](std::chrono::steady_clock::time_point t0) {
           return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
         };
         for (size_t i = 0; i < ms.size(); ++i) {  // warm-up: primitive creation
           set_vq_precision(vq[i]);
           ms[i]->decode_latents(lat);
           ms[i]->encode(pcm.data(), int64_t(pcm.size()), ms[i]->max_n_q());
         }
         for (int r = 0; r < o->repeats; ++r)
           for (size_t i = 0; i < ms.size(); ++i) {
             auto t0 = std::chrono::steady_clock::now();
             ms[i]->decode_latents(lat);
             dec_times[i].push_back(seconds_since(t0));
             set_vq_precision(vq[i]);
             t0 = std::chrono::steady_clock::now();
             ms[i]->encode(pcm.data(), int64_t(pcm.size()), ms[i]->max_n_q());
             enc_times[i].push_back(seconds_since(t0));
           }
         const auto median = [](std::vector<double> v) {
           std::sort(v.begin(), v.end());
           return v[v.size() / 2];
         };
         std::printf("{\"threads\": %d, \"seconds\": %.3f, \"models\": [", common.threads,
                     double(t.frames) * m0.hop() / m0.sample_rate());
         for (size_t i = 0; i < ms.size(); ++i) {
           std::vector<double> rt(dec_times[i].size());
           for (size_t r = 0; r < rt.size(); ++r) rt[r] = dec_times[i][r] + enc_times[i][r];
           std::printf(
               "%s{\"model\": \"%s\", \"decode_s\": %.5f, \"min_s\": %.5f, \"encode_s\": %.5f, \"roundtrip_s\": %.5f}",
               i ? ", " : "", labels[i].c_str(), median(dec_times[i]),
               *std::min_element(dec_times[i].begin(), dec_times[i].end()), median(enc_times[i]), median(rt));
         }
         std::printf("]}\n");
         set_vq_precision(vq_default);
         return 0;
       }});
}

}  // namespace wavtok
