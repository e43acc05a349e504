// The C API (capi/wavtok.h) against the C++ streaming classes and one-shot processing; capi/c_api_test.c,
// compiled as C, drives the stream.
#include "capi/wavtok.h"

#include <cmath>
#include <regex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "codec/streaming.h"
#include "core/dnnl_util.h"
#include "dsp/audio_io.h"
#include "models/models.h"
#include "tests/testing/test_util.h"

extern "C" int wavtok_c_api_roundtrip(const char* model_path, int n_q, const float* pcm, size_t n, int32_t* codes,
                                      size_t max_frames, float* out, size_t max_out, size_t* frames_out,
                                      size_t* samples_out);

namespace wavtok {
namespace {

using namespace wavtok::testing;

struct CRun {
  std::vector<int32_t> codes;  // frame-major
  std::vector<float> audio;
};

CRun c_roundtrip(const std::string& model, int n_q, const std::vector<float>& pcm) {
  CRun r;
  r.codes.resize(1000 * size_t(n_q));
  r.audio.resize(400000);
  size_t frames = 0, samples = 0;
  EXPECT_EQ(wavtok_c_api_roundtrip(model.c_str(), n_q, pcm.data(), pcm.size(), r.codes.data(), 1000, r.audio.data(),
                                   r.audio.size(), &frames, &samples),
            0)
      << wavtok_last_error();
  r.codes.resize(frames * size_t(n_q));
  r.audio.resize(samples);
  return r;
}

TEST(CApi, WavTokenizerStreamsLikeTheCppSessions) {
  const std::string model = fixture("wavtokenizer-75/model.ckpt");
  auto pcm = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
  const CRun c = c_roundtrip(model, 1, pcm);
  ASSERT_EQ(c.codes.size(), 300u);
  ASSERT_EQ(c.audio.size(), 96000u);
  auto m = Model::load(model);
  StreamingEncoder enc(m, stream_default_params());
  std::vector<int32_t> ref;
  enc.push(pcm.data(), int64_t(pcm.size()), ref);
  enc.flush(ref);
  EXPECT_EQ(c.codes, ref);
  StreamingDecoder dec(m, stream_default_params());
  std::vector<float> audio;
  dec.push(ref.data(), 300, 1, audio);
  dec.flush(audio);
  EXPECT_EQ(c.audio, audio);
}

TEST(CApi, EncodecStreamsExactly) {
  const std::string model = fixture("encodec-24k/model.th");
  auto pcm = read_audio(fixture("encodec-24k/speech.input.wav"), 24000).samples;
  const CRun c = c_roundtrip(model, 8, pcm);
  auto m = Model::load(model);
  const Tokens one = m->encode(pcm.data(), int64_t(pcm.size()), 8);
  ASSERT_EQ(c.codes.size(), one.codes.size());
  for (int64_t f = 0; f < one.frames; ++f)
    for (int q = 0; q < 8; ++q) ASSERT_EQ(c.codes[f * 8 + q], one.codes[q * one.frames + f]) << f << "," << q;
  const std::vector<float> ref = m->decode(one);
  ASSERT_EQ(c.audio.size(), ref.size());
  EXPECT_GE(snr_db(ref, c.audio), 60.0);
  wavtok_model* h = wavtok_model_load(model.c_str(), nullptr);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(wavtok_model_streams_exactly(h), 1);
  EXPECT_EQ(wavtok_model_n_q(h), 32);
  EXPECT_EQ(wavtok_model_hop(h), 320);
  wavtok_model_free(h);
}

TEST(CApi, ErrorsAreReportedNotThrown) {
  EXPECT_EQ(wavtok_model_load("/no/such/model.wtk", nullptr), nullptr);
  EXPECT_NE(std::string(wavtok_last_error()).find("/no/such/model.wtk"), std::string::npos) << wavtok_last_error();
  EXPECT_EQ(wavtok_encoder_create(nullptr, nullptr), nullptr);
  EXPECT_NE(std::string(wavtok_last_error()).find("NULL"), std::string::npos);
  EXPECT_EQ(wavtok_model_sample_rate(nullptr), -1);
  wavtok_stream_params p = wavtok_stream_default_params();
  EXPECT_EQ(wavtok_stream_preset("no-such-preset", &p), -1);
  EXPECT_NE(std::string(wavtok_last_error()).find("no-such-preset"), std::string::npos);
  EXPECT_EQ(p.block_frames, wavtok_stream_default_params().block_frames);  // untouched
  // Codes out of the codebook are refused with a message, not a crash.
  wavtok_model* m = wavtok_model_load(fixture("encodec-24k/model.th").c_str(), nullptr);
  ASSERT_NE(m, nullptr);
  wavtok_decoder* d = wavtok_decoder_create(m, nullptr);
  ASSERT_NE(d, nullptr);
  const int32_t bad[2] = {5, 99999};
  EXPECT_EQ(wavtok_decoder_push(d, bad, 1, 2), -1);
  EXPECT_STRNE(wavtok_last_error(), "");
  EXPECT_EQ(wavtok_decoder_push(d, bad, 1, 33), -1);  // more codebooks than the model has
  wavtok_decoder_free(d);
  // A NaN sample is refused, and the session takes the next chunk.
  wavtok_encoder* e = wavtok_encoder_create(m, nullptr);
  ASSERT_NE(e, nullptr);
  std::vector<float> pcm(960, 0.01f);
  pcm[700] = std::nanf("");
  EXPECT_EQ(wavtok_encoder_push(e, pcm.data(), pcm.size()), -1);
  EXPECT_NE(std::string(wavtok_last_error()).find("sample 700 is NaN"), std::string::npos) << wavtok_last_error();
  pcm[700] = 0.01f;
  EXPECT_GE(wavtok_encoder_push(e, pcm.data(), pcm.size()), 0);
  wavtok_encoder_free(e);
  wavtok_model_free(m);
  wavtok_encoder_free(nullptr);  // freeing NULL is a no-op
}

// Process settings: the version, threads per calling thread, and the precision (refused where the CPU lacks bf16).
TEST(CApi, VersionThreadsAndPrecision) {
  EXPECT_STREQ(wavtok_version(), WAVTOK_VERSION);
  EXPECT_TRUE(std::regex_match(wavtok_version(), std::regex("[0-9]+\\.[0-9]+\\.[0-9]+")));

  EXPECT_EQ(wavtok_set_num_threads(0), -1);
  EXPECT_NE(std::string(wavtok_last_error()).find("at least 1"), std::string::npos) << wavtok_last_error();
  // OpenMP's thread count is per calling thread: set on a thread, seen by that thread's calls.
  int seen = 0;
  std::thread t([&] {
    EXPECT_EQ(wavtok_set_num_threads(1), 0);
    seen = get_num_threads();
  });
  t.join();
  EXPECT_EQ(seen, 1);

  EXPECT_EQ(wavtok_set_precision("int4"), -1);
  EXPECT_NE(std::string(wavtok_last_error()).find("'int4'"), std::string::npos) << wavtok_last_error();
  EXPECT_EQ(wavtok_set_precision(nullptr), -1);
  EXPECT_EQ(get_precision(), Precision::F32);
  if (bf16_supported()) {
    EXPECT_EQ(wavtok_set_precision("bf16"), 0);
    EXPECT_EQ(get_precision(), Precision::BF16);
  } else {
    EXPECT_EQ(wavtok_set_precision("bf16"), -1);
    EXPECT_NE(std::string(wavtok_last_error()).find("AVX512-BF16"), std::string::npos) << wavtok_last_error();
  }
  EXPECT_EQ(wavtok_set_precision("f64"), 0);
  EXPECT_EQ(get_precision(), Precision::F64);
  EXPECT_EQ(wavtok_set_precision("f32"), 0);
  EXPECT_EQ(get_precision(), Precision::F32);
}

// Sessions at other rates: 48 kHz PCM in gives the codes of the same audio resampled whole (the chunked resampler
// is exact against it), and the decoder's 48 kHz output is its 24 kHz output resampled. Rates are set between
// streams only.
TEST(CApi, SessionsAtOtherRates) {
  const std::string path = fixture("wavtokenizer-75/model.ckpt");
  const auto pcm24 = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
  const auto pcm48 = resample(pcm24, 24000, 48000);
  auto m = Model::load(path);
  std::vector<int32_t> want;
  {
    const auto back = resample(pcm48, 48000, 24000);
    StreamingEncoder enc(m, stream_default_params());
    enc.push(back.data(), int64_t(back.size()), want);
    enc.flush(want);
  }
  wavtok_model* model = wavtok_model_load(path.c_str(), nullptr);
  ASSERT_NE(model, nullptr) << wavtok_last_error();
  wavtok_encoder* enc = wavtok_encoder_create(model, nullptr);
  wavtok_decoder* dec = wavtok_decoder_create(model, nullptr);
  wavtok_model_free(model);
  ASSERT_TRUE(enc && dec);
  EXPECT_EQ(wavtok_encoder_set_input_rate(enc, 0), -1);
  EXPECT_EQ(wavtok_encoder_set_input_rate(enc, 48000), 0);
  EXPECT_EQ(wavtok_decoder_set_output_rate(dec, 48000), 0);
  std::vector<int32_t> codes(400);
  int64_t frames = 0;
  for (size_t at = 0; at < pcm48.size(); at += 960) {
    ASSERT_GE(wavtok_encoder_push(enc, pcm48.data() + at, std::min<size_t>(960, pcm48.size() - at)), 0)
        << wavtok_last_error();
    if (at == 0) {
      EXPECT_EQ(wavtok_encoder_set_input_rate(enc, 24000), -1);  // not mid-stream
      EXPECT_NE(std::string(wavtok_last_error()).find("under way"), std::string::npos);
    }
  }
  ASSERT_GE(wavtok_encoder_flush(enc), 0);
  frames = wavtok_encoder_read(enc, codes.data(), 400);
  codes.resize(size_t(frames));
  EXPECT_EQ(codes, want);

  std::vector<float> ref24;
  {
    StreamingDecoder d(m, stream_default_params());
    d.push(codes.data(), frames, 1, ref24);
    d.flush(ref24);
  }
  const auto ref48 = resample(ref24, 24000, 48000);
  std::vector<float> out(ref48.size() + 100);
  int64_t got = 0, pushed = 0;
  for (int64_t f = 0; f < frames; f += 7) {
    const int64_t r = wavtok_decoder_push(dec, codes.data() + f, size_t(std::min<int64_t>(7, frames - f)), 1);
    ASSERT_GE(r, 0) << wavtok_last_error();
    pushed += r;
    got += wavtok_decoder_read(dec, out.data() + got, out.size() - size_t(got));
  }
  EXPECT_EQ(wavtok_decoder_set_output_rate(dec, 16000), -1);
  const int64_t r = wavtok_decoder_flush(dec);
  ASSERT_GE(r, 0);
  pushed += r;
  got += wavtok_decoder_read(dec, out.data() + got, out.size() - size_t(got));
  EXPECT_EQ(got, pushed);  // push and flush count output samples
  out.resize(size_t(got));
  ASSERT_NEAR(double(out.size()), double(ref48.size()), 1.0);
  EXPECT_GE(snr_db(ref48, out), 100.0);
  // After a flush the rate may change again.
  EXPECT_EQ(wavtok_decoder_set_output_rate(dec, 24000), 0);
  EXPECT_EQ(wavtok_encoder_set_input_rate(enc, 24000), 0);
  // A NaN is refused before the resampler takes the chunk.
  EXPECT_EQ(wavtok_encoder_set_input_rate(enc, 48000), 0);
  std::vector<float> bad(960, 0.1f);
  bad[5] = std::nanf("");
  EXPECT_EQ(wavtok_encoder_push(enc, bad.data(), bad.size()), -1);
  EXPECT_NE(std::string(wavtok_last_error()).find("sample 5"), std::string::npos) << wavtok_last_error();
  wavtok_encoder_free(enc);
  wavtok_decoder_free(dec);
}

}  // namespace
}  // namespace wavtok
