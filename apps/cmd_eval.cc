// `wavtok eval REF DEGRADED`: objective quality of a decoded file against its reference.
#include <cmath>
#include <cstdio>

#include "apps/commands.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "dsp/metrics.h"
#include "io/token_file.h"

namespace wavtok {

void register_eval_command(CLI::App& app, Common& common, std::vector<Command>& out) {
  struct Opts {
    std::string ref, deg, tokens;
    int rate = 24000;
    double bitrate = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "eval", "quality metrics of a decoded file against the reference: SI-SNR, mel distance, STOI, bitrate");
  sub->add_option("reference", o->ref, "reference (clean) audio")->required();
  sub->add_option("decoded", o->deg, "decoded / degraded audio")->required();
  sub->add_option("--rate", o->rate, "rate both are resampled to before comparing (default 24000)")
      ->check(CLI::Range(1000, 384000));
  sub->add_option("--tokens", o->tokens, "token file: bitrate from its frame rate, n_q and codebook size");
  sub->add_option("--bitrate", o->bitrate, "bitrate in kbps to report (e.g. for another codec)")
      ->check(number_in(0, 1e6, true));
  sub->add_flag("--json", o->json, "print one JSON object");
  out.push_back(
      {sub, [o]() {
         Audio ref = read_audio(o->ref, o->rate), deg = read_audio(o->deg, o->rate);
         // Codecs pad or trim by a few samples: compare the common length.
         const size_t n = std::min(ref.samples.size(), deg.samples.size());
         if (n < size_t(o->rate) / 10) throw Error("eval: signals are shorter than 0.1 s");
         std::span<const float> r(ref.samples.data(), n), d(deg.samples.data(), n);
         double kbps = o->bitrate;
         if (!o->tokens.empty()) {
           TokenFile t = read_tokens(o->tokens);
           if (!t.hop || !t.bins) throw Error(o->tokens + ": bitrate needs a native .wtt token file");
           kbps = t.tokens.n_q * std::log2(double(t.bins)) * double(t.sample_rate) / t.hop / 1000.0;
         }
         const double sisnr = si_snr(r, d), mel = mel_distance(r, d, o->rate), st = stoi(r, d, o->rate);
         if (o->json)
           std::printf(
               "{\"si_snr_db\": %.4f, \"mel_distance\": %.5f, \"stoi\": %.5f, \"kbps\": %.4f, \"seconds\": %.3f}\n",
               sisnr, mel, st, kbps, double(n) / o->rate);
         else
           std::printf(
               "SI-SNR        %8.3f dB\nmel distance  %8.5f\nSTOI          %8.5f\nbitrate       %8.3f kbps\nlength     "
               "   %8.3f s\n",
               sisnr, mel, st, kbps, double(n) / o->rate);
         return 0;
       }});
  (void)common;
}

}  // namespace wavtok
