// Truncated audio files: a header that promises more samples than the file holds is reported (both counts), and
// refused in strict mode. The truth is the file's own construction: N frames written, the data cut to M frames.
#include <gtest/gtest.h>
#include <sndfile.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;
using testing::scratch_dir;

std::vector<float> tone(int64_t frames, int channels) {
  std::vector<float> v(size_t(frames) * channels);
  for (int64_t i = 0; i < frames; ++i)
    for (int c = 0; c < channels; ++c) v[size_t(i) * channels + c] = float(0.4 * std::sin(0.01 * i * (c + 1)));
  return v;
}

// Writes `frames` frames, then cuts the file so that only `keep` frames of data remain after the header.
void write_cut(const fs::path& p, int format, int channels, int bytes_per_sample, int64_t frames, int64_t keep,
               int rate = 16000) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
  const auto x = tone(frames, channels);
  ASSERT_EQ(sf_writef_float(f, x.data(), frames), frames);
  sf_close(f);
  // The data are the last frames * channels * bytes of the file (libsndfile writes no trailing chunk here).
  const auto size = fs::file_size(p);
  const auto data = uint64_t(frames) * channels * bytes_per_sample;
  ASSERT_GT(size, data);
  fs::resize_file(p, size - data + uint64_t(keep) * channels * bytes_per_sample);
}

std::string strict_error(const fs::path& p, int rate = 0) {
  try {
    read_audio(p.string(), rate, ReadOptions{.strict = true});
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(AudioTruncation, CutPcm16WavReportsBothCountsAndKeepsWhatIsThere) {
  const fs::path dir = scratch_dir();
  const auto p = dir / "cut.wav";
  write_cut(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 2, 16000, 10000);
  const Audio a = read_audio(p.string(), 0);
  EXPECT_TRUE(a.truncated());
  EXPECT_EQ(a.frames_promised, 16000);
  EXPECT_EQ(a.frames_read, 10000);
  ASSERT_EQ(a.samples.size(), 10000u);
  const auto x = tone(10000, 1);
  for (size_t i = 0; i < x.size(); i += 997) EXPECT_NEAR(a.samples[i], x[i], 1.0 / 32768);
  const std::string msg = truncation_message(p.string(), a);
  EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("16000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("10000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0.375 s"), std::string::npos) << msg;  // 6000 samples at 16 kHz
  const std::string err = strict_error(p);
  EXPECT_NE(err.find("16000"), std::string::npos) << err;
  EXPECT_NE(err.find("10000"), std::string::npos) << err;
}

TEST(AudioTruncation, CutStereoFloatWavCountsFramesAndSurvivesResampling) {
  const fs::path dir = scratch_dir();
  const auto p = dir / "cut_stereo.wav";
  write_cut(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 4, 8000, 3000, 8000);
  const Audio a = read_audio(p.string(), 24000);  // counts stay at the file's rate
  EXPECT_EQ(a.frames_promised, 8000);
  EXPECT_EQ(a.frames_read, 3000);
  EXPECT_EQ(a.file_sample_rate, 8000);
  EXPECT_EQ(a.sample_rate, 24000);
  EXPECT_EQ(a.samples.size(), 9000u);
  EXPECT_NE(strict_error(p, 24000).find("8000"), std::string::npos);
}

TEST(AudioTruncation, CutAiffIsReported) {
  const fs::path dir = scratch_dir();
  const auto p = dir / "cut.aiff";
  write_cut(p, SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 1, 2, 12000, 5000);
  const Audio a = read_audio(p.string(), 0);
  EXPECT_EQ(a.frames_promised, 12000);
  EXPECT_EQ(a.frames_read, 5000);
}

TEST(AudioTruncation, CompleteFilesAreNotTruncatedAndPassStrict) {
  const fs::path dir = scratch_dir();
  for (const auto& [name, fmt, bps] : {std::tuple{"full.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 3},
                                       std::tuple{"full.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 2},
                                       std::tuple{"full.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 0}}) {
    const auto p = dir / name;
    SF_INFO info{};
    info.samplerate = 16000;
    info.channels = 2;
    info.format = fmt;
    SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
    ASSERT_NE(f, nullptr);
    const auto x = tone(7001, 2);
    sf_writef_float(f, x.data(), 7001);
    sf_close(f);
    const Audio a = read_audio(p.string(), 0, ReadOptions{.strict = true});
    EXPECT_FALSE(a.truncated()) << name;
    EXPECT_EQ(a.frames_promised, 7001) << name;
    EXPECT_EQ(a.frames_read, 7001) << name;
    EXPECT_EQ(truncation_message(p.string(), a), "") << name;
  }
}

TEST(AudioTruncation, OpenLengthHeaderOfAStreamingWriterIsNotATruncation) {
  // A WAV written to a pipe carries 0xFFFFFFFF as its data size: the length is unknown, not a promise.
  const fs::path dir = scratch_dir();
  const auto p = dir / "stream.wav";
  write_cut(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 2, 4000, 4000);
  std::FILE* f = std::fopen(p.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  // find "data" and set its size to 0xFFFFFFFF
  std::vector<unsigned char> b(fs::file_size(p));
  ASSERT_EQ(std::fread(b.data(), 1, b.size(), f), b.size());
  size_t at = 0;
  for (size_t i = 12; i + 8 <= b.size(); ++i)
    if (std::memcmp(&b[i], "data", 4) == 0) {
      at = i + 4;
      break;
    }
  ASSERT_GT(at, 0u);
  std::fseek(f, long(at), SEEK_SET);
  const unsigned char ff[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  std::fwrite(ff, 1, 4, f);
  std::fclose(f);
  const Audio a = read_audio(p.string(), 0, ReadOptions{.strict = true});
  EXPECT_FALSE(a.truncated());
  EXPECT_EQ(a.frames_read, 4000);
}

}  // namespace
}  // namespace wavtok
