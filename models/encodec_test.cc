// EnCodec-format (residual VQ, causal SEANet) checkpoints against the original implementation's outputs
// in ../shared/fixtures/encodec-24k.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "models/model.h"
#include "models/models.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

class Encodec : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model = Model::load(fixture("encodec-24k/model.th"));
    Audio in = read_audio(fixture("encodec-24k/speech.input.wav"), 24000);
    emb = new Tensor(model->encode_latents(in.samples.data(), int64_t(in.samples.size())));
  }
  static void TearDownTestSuite() {
    delete emb;
    model.reset();
  }
  static std::shared_ptr<const Model> model;
  static Tensor* emb;
};
std::shared_ptr<const Model> Encodec::model;
Tensor* Encodec::emb = nullptr;

TEST_F(Encodec, InfersConfigFromStateDict) {
  const ModelConfig& c = model->config();
  EXPECT_EQ(c.arch, Arch::EnCodec);
  EXPECT_EQ(c.quantizer.n_q, 32);
  EXPECT_EQ(c.quantizer.bins, 1024);
  EXPECT_EQ(c.encoder.dimension, 32);
  EXPECT_EQ(c.encoder.n_filters, 8);
  EXPECT_EQ(c.hop(), 320);
  EXPECT_EQ(c.n_q_for_bandwidth(1.5), 2);
  EXPECT_EQ(c.n_q_for_bandwidth(6), 8);
  EXPECT_EQ(c.n_q_for_bandwidth(24), 32);
}

TEST_F(Encodec, EncoderOutputMatches) {
  auto ref = npy_floats(fixture("encodec-24k/speech.emb.npy"));
  ASSERT_EQ(emb->numel(), int64_t(ref.size()));
  EXPECT_LE(max_abs(emb->data(), ref), 1e-3);
}

// Chunked encoding of long inputs (forced with 11-frame chunks): the causal encoder gives the one-pass latents.
TEST_F(Encodec, ChunkedEncodingMatchesOnePass) {
  Audio in = read_audio(fixture("encodec-24k/speech.input.wav"), 24000);
  auto m = Model::load(fixture("encodec-24k/model.th"));
  m->set_encode_chunk_frames(11);
  Tensor chunked = m->encode_latents(in.samples.data(), int64_t(in.samples.size()));
  ASSERT_EQ(chunked.shape(), emb->shape());
  EXPECT_LE(max_abs(chunked.data(), std::vector<float>(emb->data(), emb->data() + emb->numel())), 1e-4);
  EXPECT_EQ(m->quantize(chunked, 32).codes, model->quantize(*emb, 32).codes);
}

class EncodecBandwidth : public Encodec, public ::testing::WithParamInterface<std::string> {};

TEST_P(EncodecBandwidth, CodesLatentsAndAudioMatch) {
  const std::string bw = GetParam();
  const std::string base = fixture("encodec-24k/speech.bw" + bw);
  const int nq = model->config().n_q_for_bandwidth(std::stod(bw));
  Tensor q;
  Tokens tk = model->quantize(*emb, nq, &q);
  auto ref_codes = npy_ints(base + ".codes.npy");
  ASSERT_EQ(tk.codes.size(), ref_codes.size());
  size_t same = 0;
  for (size_t i = 0; i < ref_codes.size(); ++i) same += tk.codes[i] == ref_codes[i];
  EXPECT_GE(double(same) / ref_codes.size(), 0.99) << same << "/" << ref_codes.size();
  auto ref_lat = npy_floats(base + ".latents.npy");
  EXPECT_LE(max_abs(q.data(), ref_lat), 1e-3);
  // Decode the fixture's own codes and its latents: both give the reference audio, and the same audio.
  Tokens ref;
  ref.n_q = nq;
  ref.frames = 300;
  ref.codes.assign(ref_codes.begin(), ref_codes.end());
  std::vector<float> from_codes = model->decode(ref);
  std::vector<float> expected = read_audio(base + ".decoded.wav", 24000).samples;
  ASSERT_EQ(from_codes.size(), expected.size());
  EXPECT_GE(snr_db(expected, from_codes), 50.0);
  Tensor lat({32, 300}, ref_lat);
  std::vector<float> from_latents = model->decode_latents(lat);
  EXPECT_GE(snr_db(from_codes, from_latents), 100.0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EncodecBandwidth, ::testing::Values("1.5", "6", "24"));

TEST_F(Encodec, RefusesWhatTheModelLacks) {
  EXPECT_THROW(model->config().n_q_for_bandwidth(48), Error);
  Tokens tk;
  tk.n_q = 33;
  tk.frames = 2;
  tk.codes.assign(66, 0);
  EXPECT_THROW(model->decode(tk), Error);
  EXPECT_THROW(model->decode_latents(Tensor({31, 10})), Error);
  EXPECT_THROW(model->quantize(*emb, 40), Error);
}

}  // namespace
}  // namespace wavtok
