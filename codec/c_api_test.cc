// The C API (codec/wavtok.h) against the C++ streaming classes; tests/c_api_test.c is compiled as C.
#include "codec/wavtok.h"

#include <gtest/gtest.h>

#include "codec/streaming.h"
#include "dsp/audio_io.h"
#include "tests/test_util.h"

extern "C" int wavtok_c_api_roundtrip(const char* model_path, const float* pcm, size_t n, int32_t* codes,
                                      size_t max_frames, float* out, size_t max_out, size_t* frames_out,
                                      size_t* samples_out);

namespace wavtok {
namespace {

using namespace wavtok::testing;

TEST(CApi, StreamsLikeTheCppSessions) {
  const std::string model = fixture("wavtokenizer-75/model.ckpt");
  auto pcm = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
  std::vector<int32_t> codes(1000);
  std::vector<float> out(400000);
  size_t frames = 0, samples = 0;
  ASSERT_EQ(wavtok_c_api_roundtrip(model.c_str(), pcm.data(), pcm.size(), codes.data(), codes.size(), out.data(),
                                   out.size(), &frames, &samples),
            0)
      << wavtok_last_error();
  ASSERT_EQ(frames, 300u);
  ASSERT_EQ(samples, 96000u);
  // Same as the C++ classes with the same parameters.
  auto m = Model::load(model);
  StreamingEncoder enc(m, stream_default_params());
  std::vector<int32_t> ref;
  enc.push(pcm.data(), int64_t(pcm.size()), ref);
  enc.flush(ref);
  EXPECT_EQ(std::vector<int32_t>(codes.begin(), codes.begin() + 300), ref);
  StreamingDecoder dec(m, stream_default_params());
  std::vector<float> audio;
  dec.push(ref.data(), 300, 1, audio);
  dec.flush(audio);
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 96000), audio);
}

TEST(CApi, ErrorsAreReportedNotThrown) {
  EXPECT_EQ(wavtok_model_load("/no/such/model.wtk", nullptr), nullptr);
  EXPECT_NE(std::string(wavtok_last_error()).find("not found"), std::string::npos) << wavtok_last_error();
  EXPECT_EQ(wavtok_encoder_create(nullptr, nullptr), nullptr);
  EXPECT_NE(std::string(wavtok_last_error()).find("NULL"), std::string::npos);
  EXPECT_EQ(wavtok_model_sample_rate(nullptr), -1);
}

}  // namespace
}  // namespace wavtok
