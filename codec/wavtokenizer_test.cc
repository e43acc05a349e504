// WavTokenizer checkpoints against outputs of the original PyTorch implementation
// (../shared/fixtures/wavtokenizer-75) and of our own PyTorch reference at 40 tokens/s.
#include <filesystem>

#include <gtest/gtest.h>

#include "codec/model.h"
#include "codec/model_file.h"
#include "dsp/audio_io.h"
#include "tests/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

struct Expect {
  std::vector<float> latents, features, decoded;
  std::vector<int64_t> codes;
};

Expect load_expected(const std::string& dir) {
  Expect e;
  e.latents = npy_floats(dir + "/speech.latents.npy");
  e.features = npy_floats(dir + "/speech.features.npy");
  e.codes = npy_ints(dir + "/speech.codes.npy");
  e.decoded = read_audio(dir + "/speech.decoded.wav", 24000).samples;
  return e;
}

// The fixture README's tolerances: codes >= 99% equal, latents/features <= 1e-3, audio >= 50 dB SNR.
void check_against(const Model& m, const std::string& dir) {
  const Expect e = load_expected(dir);
  Audio in = read_audio(dir + "/speech.input.wav", m.sample_rate());
  Tensor lat = m.encode_latents(in.samples.data(), int64_t(in.samples.size()));
  ASSERT_EQ(lat.numel(), int64_t(e.latents.size())) << "latent shape " << shape_str(lat.shape());
  EXPECT_LE(max_abs(lat.data(), e.latents), 1e-3) << "latents";
  Tensor q;
  Tokens tk = m.quantize(lat, 1, &q);
  ASSERT_EQ(tk.codes.size(), e.codes.size());
  size_t same = 0;
  for (size_t i = 0; i < e.codes.size(); ++i) same += tk.codes[i] == e.codes[i];
  EXPECT_GE(double(same) / e.codes.size(), 0.99) << same << " of " << e.codes.size() << " codes equal";
  EXPECT_LE(max_abs(q.data(), e.features), 1e-3) << "features";
  // Decode the fixture's codes (not ours) so decoding is checked on its own.
  Tokens ref;
  ref.n_q = 1;
  ref.frames = int64_t(e.codes.size());
  ref.codes.assign(e.codes.begin(), e.codes.end());
  std::vector<float> audio = m.decode(ref);
  ASSERT_EQ(audio.size(), e.decoded.size());
  EXPECT_GE(snr_db(e.decoded, audio), 50.0);
}

TEST(WavTokenizer75, CheckpointMatchesReference) {
  auto m = Model::load(fixture("wavtokenizer-75/model.ckpt"));
  EXPECT_EQ(m->config().hop(), 320);
  EXPECT_EQ(m->config().encoder.n_filters, 8);
  EXPECT_EQ(m->config().encoder.dimension, 64);
  check_against(*m, fixture("wavtokenizer-75"));
}

TEST(WavTokenizer75, ConvertedFileGivesIdenticalResults) {
  const std::string dir = scratch_dir("wt75_convert");
  auto a = Model::load(fixture("wavtokenizer-75/model.ckpt"), {fixture("wavtokenizer-75/config.yaml")});
  write_model_file(dir + "/m.wtk", a->config(), a->weights());
  auto b = Model::load(dir + "/m.wtk");
  EXPECT_EQ(a->fingerprint(), b->fingerprint());
  Audio in = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000);
  Tokens ta = a->encode(in.samples.data(), int64_t(in.samples.size()), 1);
  Tokens tb = b->encode(in.samples.data(), int64_t(in.samples.size()), 1);
  EXPECT_EQ(ta.codes, tb.codes);
  std::vector<float> ya = a->decode(ta), yb = b->decode(tb);
  EXPECT_EQ(ya, yb);
}

// A 40 tokens/s model (ratios [6,5,5,4], n_fft 2400, hop 600) made by our own PyTorch reference.
TEST(WavTokenizer40, CheckpointMatchesOwnReference) {
  const std::string dir = scratch_dir("ref40");
  ASSERT_EQ(run_python(source_dir() + "/models/make_reference_fixtures.py --config 40 --out " + dir), 0)
      << "the PyTorch reference could not run: run scripts/setup.sh (installs python3-torch)";
  auto m = Model::load(dir + "/model.ckpt");
  EXPECT_EQ(m->config().hop(), 600);
  EXPECT_EQ(m->config().vocos.n_fft, 2400);
  check_against(*m, dir);
}

}  // namespace
}  // namespace wavtok
