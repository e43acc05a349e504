#include "dsp/audio_io.h"

#include <gtest/gtest.h>
#include <sndfile.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;

using testing::scratch_dir;

// Writes interleaved frames with libsndfile directly, so tests can make files read_audio must reject.
void write_raw(const fs::path& p, int format, int rate, int channels, const std::vector<float>& interleaved) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
  const sf_count_t frames = sf_count_t(interleaved.size()) / channels;
  if (frames > 0) {
    EXPECT_EQ(sf_writef_float(f, interleaved.data(), frames), frames);
  }
  sf_close(f);
}

std::vector<float> noise(size_t n, float amp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amp, amp);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

std::vector<float> sine(size_t n, double freq, double rate, double amp, double phase = 0) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(amp * std::sin(2 * std::numbers::pi * freq * i / rate + phase));
  return v;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no wavtok::Error thrown)";
}

size_t entries_in(const fs::path& dir) {
  return size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(AudioIo, WavRoundTripIsExact) {
  const std::filesystem::path dir = scratch_dir();
  const auto x = noise(5000, 1.5f, 1);  // float WAV keeps values beyond [-1, 1]
  write_audio((dir / "a.wav").string(), x, 24000);
  const Audio a = read_audio((dir / "a.wav").string(), 24000);
  EXPECT_EQ(a.sample_rate, 24000);
  EXPECT_EQ(a.samples, x);
  EXPECT_EQ(entries_in(dir), 1u);  // no temporary left behind
}

TEST(AudioIo, FlacRoundTripWithin24BitQuantisation) {
  const std::filesystem::path dir = scratch_dir();
  const auto x = noise(5000, 0.9f, 2);
  write_audio((dir / "a.FLAC").string(), x, 16000);
  const Audio a = read_audio((dir / "a.FLAC").string(), 0);
  EXPECT_EQ(a.sample_rate, 16000);
  ASSERT_EQ(a.samples.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(a.samples[i], x[i], 1.0 / (1 << 23)) << i;
}

TEST(AudioIo, FlacClipsOutOfRangeInsteadOfWrapping) {
  const std::filesystem::path dir = scratch_dir();
  const std::vector<float> x = {0.5f, 1.7f, -2.0f, 0.25f};
  write_audio((dir / "c.flac").string(), x, 8000);
  const Audio a = read_audio((dir / "c.flac").string(), 0);
  ASSERT_EQ(a.samples.size(), 4u);
  EXPECT_NEAR(a.samples[1], 1.0f, 1e-6);
  EXPECT_NEAR(a.samples[2], -1.0f, 1e-6);
}

TEST(AudioIo, OggRoundTripIsApproximate) {
  const std::filesystem::path dir = scratch_dir();
  std::vector<float> x = sine(48000, 440, 24000, 0.4);
  const auto y = sine(48000, 1250, 24000, 0.2, 1.0);
  for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  write_audio((dir / "a.ogg").string(), x, 24000);
  const Audio a = read_audio((dir / "a.ogg").string(), 24000);
  ASSERT_EQ(a.samples.size(), x.size());
  double sig = 0, err = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sig += double(x[i]) * x[i];
    err += (double(a.samples[i]) - x[i]) * (double(a.samples[i]) - x[i]);
  }
  EXPECT_GT(10 * std::log10(sig / err), 20.0);  // lossy, but clearly the same signal
}

TEST(AudioIo, StereoIsAveragedToMono) {
  const std::filesystem::path dir = scratch_dir();
  const auto l = noise(3000, 0.5f, 3), r = noise(3000, 0.5f, 4);
  std::vector<float> inter;
  for (size_t i = 0; i < l.size(); ++i) {
    inter.push_back(l[i]);
    inter.push_back(r[i]);
  }
  write_raw(dir / "s.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 22050, 2, inter);
  const Audio a = read_audio((dir / "s.wav").string(), 0);
  EXPECT_EQ(a.sample_rate, 22050);
  ASSERT_EQ(a.samples.size(), l.size());
  for (size_t i = 0; i < l.size(); ++i) EXPECT_FLOAT_EQ(a.samples[i], 0.5f * (l[i] + r[i]));
}

TEST(AudioIo, IntegerPcmIsScaledToUnitRange) {
  const std::filesystem::path dir = scratch_dir();
  // 16-bit PCM: libsndfile maps full scale to 1.0 (x / 32768).
  write_raw(dir / "p.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, {0.5f, -0.25f, 0.0f});
  const Audio a = read_audio((dir / "p.wav").string(), 0);
  ASSERT_EQ(a.samples.size(), 3u);
  EXPECT_FLOAT_EQ(a.samples[0], 0.5f);
  EXPECT_FLOAT_EQ(a.samples[1], -0.25f);
}

// Least-squares fit of a*sin + b*cos at a known frequency; returns amplitude and relative RMS residual.
std::pair<double, double> fit_sine(const std::vector<float>& x, size_t from, size_t to, double freq, double rate) {
  double ss = 0, cc = 0, sc = 0, xs = 0, xc = 0;
  for (size_t i = from; i < to; ++i) {
    const double s = std::sin(2 * std::numbers::pi * freq * i / rate),
                 c = std::cos(2 * std::numbers::pi * freq * i / rate);
    ss += s * s, cc += c * c, sc += s * c, xs += x[i] * s, xc += x[i] * c;
  }
  const double det = ss * cc - sc * sc;
  const double a = (xs * cc - xc * sc) / det, b = (xc * ss - xs * sc) / det;
  double res = 0;
  for (size_t i = from; i < to; ++i) {
    const double m =
        a * std::sin(2 * std::numbers::pi * freq * i / rate) + b * std::cos(2 * std::numbers::pi * freq * i / rate);
    res += (x[i] - m) * (x[i] - m);
  }
  const double amp = std::hypot(a, b);
  return {amp, std::sqrt(res / double(to - from)) / (amp / std::sqrt(2.0))};
}

TEST(AudioIo, Resample48kTo24kKeepsSineFrequencyAndAmplitude) {
  const std::filesystem::path dir = scratch_dir();
  for (double f : {100.0, 1000.0, 7300.0, 10000.0}) {
    SCOPED_TRACE(f);
    write_audio((dir / "s48.wav").string(), sine(48000, f, 48000, 0.5, 0.3), 48000);
    const Audio a = read_audio((dir / "s48.wav").string(), 24000);
    EXPECT_EQ(a.sample_rate, 24000);
    ASSERT_EQ(a.samples.size(), 24000u);
    const auto [amp, rel_res] = fit_sine(a.samples, 500, 23500, f, 24000);
    EXPECT_NEAR(20 * std::log10(amp / 0.5), 0.0, 0.1);
    EXPECT_LT(rel_res, 1e-3);  // a shifted frequency would leave a large residual
    // Phase is kept too (linear phase, delay compensated): compare with the ideal 24 kHz sine directly.
    const auto ideal = sine(24000, f, 24000, 0.5, 0.3);
    double err = 0;
    for (size_t i = 500; i < 23500; ++i) err = std::max(err, std::abs(double(a.samples[i]) - ideal[i]));
    EXPECT_LT(err, 1e-3);
  }
}

TEST(AudioIo, ResampleLengthAndIdentity) {
  const auto x = noise(1001, 0.5f, 9);
  EXPECT_EQ(resample(x, 16000, 16000), x);
  EXPECT_EQ(resample(x, 22050, 24000).size(), size_t(std::lround(1001 * 24000.0 / 22050)));
  EXPECT_EQ(resample(x, 48000, 10000).size(), size_t(std::lround(1001 * 10000.0 / 48000)));
  EXPECT_THROW(resample(x, 0, 24000), Error);
}

TEST(AudioIo, RejectsNanWithPositionAndFileName) {
  const std::filesystem::path dir = scratch_dir();
  auto x = noise(4000, 0.5f, 5);
  x[1234] = NAN;
  write_raw(dir / "nan.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 24000, 1, x);
  const std::string msg = error_of([&] { read_audio((dir / "nan.wav").string(), 24000); });
  EXPECT_NE(msg.find("nan.wav"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NaN/Inf at sample 1234"), std::string::npos) << msg;
  x[1234] = 0.0f;
  x[77] = INFINITY;
  write_raw(dir / "inf.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 24000, 1, x);
  EXPECT_NE(error_of([&] { read_audio((dir / "inf.wav").string(), 0); }).find("at sample 77"), std::string::npos);
}

TEST(AudioIo, RejectsNonAudioAndMissingFiles) {
  const std::filesystem::path dir = scratch_dir();
  std::ofstream(dir / "notes.wav") << "this is not a RIFF file, just text\n";
  std::string msg = error_of([&] { read_audio((dir / "notes.wav").string(), 24000); });
  EXPECT_NE(msg.find("notes.wav"), std::string::npos) << msg;
  msg = error_of([&] { read_audio((dir / "missing.flac").string(), 24000); });
  EXPECT_NE(msg.find("missing.flac"), std::string::npos) << msg;
  msg = error_of([&] { read_audio(dir.string(), 24000); });
  EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
}

// libsndfile reports a failed open through one process-wide variable; read_audio on several threads must still give
// each corrupt file its own reason (it once said "No Error." when another thread's open had just succeeded, which
// made BatchTest.KilledAndRestartedRedoesNothingAndLosesNothing fail now and then).
TEST(AudioIo, OpenErrorsStayWithTheirFileAcrossThreads) {
  const std::filesystem::path dir = scratch_dir();
  std::ofstream(dir / "notes.wav") << "this is not a RIFF file, just text\n";
  write_audio((dir / "good.wav").string(), noise(2400, 0.3f, 3), 24000);
  const std::string expected = error_of([&] { read_audio((dir / "notes.wav").string(), 24000); });
  ASSERT_NE(expected.find("cannot read as audio"), std::string::npos) << expected;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if ((i + t) % 2) {
          read_audio((dir / "good.wav").string(), 0);
        } else if (error_of([&] { read_audio((dir / "notes.wav").string(), 24000); }) != expected) {
          ++wrong;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0) << "a corrupt file's error message came from another thread's open";
}

TEST(AudioIo, RejectsEmptyAndTooManyChannels) {
  const std::filesystem::path dir = scratch_dir();
  write_raw(dir / "empty.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 24000, 1, {});
  EXPECT_NE(error_of([&] { read_audio((dir / "empty.wav").string(), 0); }).find("no audio frames"), std::string::npos);
  write_raw(dir / "many.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 24000, 65, std::vector<float>(65 * 10, 0.1f));
  EXPECT_NE(error_of([&] { read_audio((dir / "many.wav").string(), 0); }).find("channel count 65"), std::string::npos);
}

TEST(AudioIo, WriteFailuresLeaveNoFile) {
  const std::filesystem::path dir = scratch_dir();
  const auto x = noise(100, 0.5f, 6);
  // Parent directory missing (works as root too, unlike a read-only directory).
  EXPECT_THROW(write_audio((dir / "nope" / "a.wav").string(), x, 24000), Error);
  EXPECT_FALSE(fs::exists(dir / "nope"));
  // Target is a directory.
  fs::create_directory(dir / "d.wav");
  EXPECT_THROW(write_audio((dir / "d.wav").string(), x, 24000), Error);
  EXPECT_TRUE(fs::is_directory(dir / "d.wav"));
  EXPECT_TRUE(fs::is_empty(dir / "d.wav"));
  // Unknown extension, bad rate, NaN sample.
  EXPECT_THROW(write_audio((dir / "a.mp4").string(), x, 24000), Error);
  EXPECT_THROW(write_audio((dir / "a.wav").string(), x, 0), Error);
  auto bad = x;
  bad[50] = NAN;
  EXPECT_THROW(write_audio((dir / "b.wav").string(), bad, 24000), Error);
  EXPECT_EQ(entries_in(dir), 1u);  // only d.wav: no outputs, no temporaries
}

TEST(AudioIo, RefusesToOverwriteProtectedInput) {
  const std::filesystem::path dir = scratch_dir();
  const auto x = noise(100, 0.5f, 7);
  const std::string in = (dir / "in.wav").string();
  write_audio(in, x, 24000);
  fs::create_hard_link(in, dir / "alias.wav");
  EXPECT_THROW(write_audio((dir / "alias.wav").string(), noise(100, 0.5f, 8), 24000, in), Error);
  EXPECT_EQ(read_audio(in, 0).samples, x);
  // A different path is fine, and overwriting an unprotected existing file replaces it.
  write_audio((dir / "out.wav").string(), x, 24000, in);
  write_audio((dir / "out.wav").string(), noise(50, 0.5f, 9), 24000, in);
  EXPECT_EQ(read_audio((dir / "out.wav").string(), 0).samples.size(), 50u);
}

TEST(AudioIo, SameFile) {
  const std::filesystem::path dir = scratch_dir();
  std::ofstream(dir / "a") << "x";
  std::ofstream(dir / "b") << "x";
  fs::create_symlink(dir / "a", dir / "link");
  EXPECT_TRUE(same_file((dir / "a").string(), (dir / "a").string()));
  EXPECT_TRUE(same_file((dir / "a").string(), (dir / "link").string()));
  EXPECT_TRUE(same_file((dir / "a").string(), (dir / "." / "a").string()));
  EXPECT_FALSE(same_file((dir / "a").string(), (dir / "b").string()));
  EXPECT_FALSE(same_file((dir / "a").string(), (dir / "missing").string()));
}

TEST(AudioIo, ReadsFixtureSpeech) {
  const std::string p = std::string(WAVTOK_SOURCE_DIR) + "/../shared/fixtures/wavtokenizer-75/speech.input.wav";
  if (!fs::exists(p)) GTEST_SKIP() << "fixture missing: " << p;
  const Audio a = read_audio(p, 24000);
  EXPECT_EQ(a.sample_rate, 24000);
  EXPECT_EQ(a.samples.size(), 96000u);
  const Audio b = read_audio(p, 16000);
  EXPECT_EQ(b.samples.size(), 64000u);
}

}  // namespace
}  // namespace wavtok
