// libFuzzer target: audio input through the whole encode path, as `wavtok encode` runs it: read_audio on the
// bytes (any format libsndfile reads; downmix, resampling to the model's rate), then Model::encode with the tiny
// fixture model. Malformed input must end in wavtok::Error. Audio longer than 10 s after resampling is not
// encoded (long files are legitimately slow, not a finding), but reading it must stay within the fuzzer's limits.
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "tests/fuzz/fuzz_util.h"

#include <sndfile.h>

namespace {

// The model's layers cache oneDNN primitives (and weight copies) per input length, without bound, so thousands
// of distinct lengths grow the process by ~0.6 MB each (a finding reported with issue 7). A fresh copy of the
// model every 256 inputs keeps the fuzzer within its memory limit while still trying every length.
std::shared_ptr<const wavtok::Model> model_for_this_input() {
  static const auto base = wavtok::fuzz::tiny_model();
  static std::shared_ptr<const wavtok::Model> current = base;
  static int uses = 0;
  if (++uses % 256 == 0) current = wavtok::Model::from_weights(base->config(), base->weights());
  return current;
}

}  // namespace

// Duration the file's header announces, in samples at `rate` (0 if libsndfile cannot open it).
static double announced_samples(const std::string& path, int rate) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) return 0;
  sf_close(f);
  return info.samplerate > 0 ? double(info.frames) * rate / info.samplerate : 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto model = model_for_this_input();
  const std::string path = wavtok::fuzz::scratch_file("audio", data, size);
  // A few KB at a very low sample rate announce hours at the model's rate (docs/LIMITS.md): legitimately slow,
  // so such inputs are skipped instead of stalling the fuzzer.
  if (announced_samples(path, model->sample_rate()) > 60.0 * model->sample_rate()) return 0;
  try {
    const wavtok::Audio a = wavtok::read_audio(path, model->sample_rate());
    if (a.sample_rate != model->sample_rate() || a.samples.empty()) __builtin_trap();
    for (float v : a.samples)
      if (!std::isfinite(v)) __builtin_trap();
    if (a.samples.size() > size_t(10 * model->sample_rate())) return 0;
    const wavtok::Tokens t = model->encode(a.samples.data(), int64_t(a.samples.size()), model->max_n_q());
    if (t.codes.size() != size_t(t.n_q) * size_t(t.frames)) __builtin_trap();
    for (int32_t c : t.codes)
      if (c < 0 || c >= model->config().quantizer.bins) __builtin_trap();
  } catch (const wavtok::Error&) {}
  return 0;
}
