// The CLI on hostile and broken input (issue 7): every case runs `cli_main` in-process and asserts the exit code,
// the error text, that no output (partial or temporary) appears and that no file in the scratch folder changed.
// Files are crafted byte by byte here (WAV headers, token/model/npy headers) so each one asks for exactly one
// absurd thing. Tests run as root in CI, where chmod does not stop writes, so "unwritable output folder" uses a
// folder under /proc (no regular files can be created there) and a path whose parent is a regular file.
#include "apps/cli.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include <gtest/gtest.h>
#include <unistd.h>

#include "apps/cli_test_util.h"
#include "dsp/audio_io.h"
#include "io/token_file.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;
using namespace wavtok::testing;

using Result = CliResult;
Result run(std::vector<std::string> args) { return run_cli(std::move(args)); }

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) return {};
  std::string s(static_cast<size_t>(f.tellg()), '\0');
  f.seekg(0);
  f.read(s.data(), std::streamsize(s.size()));
  return s;
}

void write_bytes(const std::string& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary);
  f << data;
}

template <class T>
void append(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

// A canonical 44-byte WAV header followed by `data`; every field can be set to anything.
std::string wav(uint16_t format, uint16_t channels, uint32_t rate, uint16_t bits, const std::string& data,
                uint32_t data_bytes_claimed = std::numeric_limits<uint32_t>::max()) {
  const uint32_t claimed =
      data_bytes_claimed == std::numeric_limits<uint32_t>::max() ? uint32_t(data.size()) : data_bytes_claimed;
  std::string s = "RIFF";
  append<uint32_t>(s, 36 + claimed);
  s += "WAVEfmt ";
  append<uint32_t>(s, 16);
  append<uint16_t>(s, format);  // 1 = PCM, 3 = IEEE float
  append<uint16_t>(s, channels);
  append<uint32_t>(s, rate);
  append<uint32_t>(s, rate * channels * (bits / 8));
  append<uint16_t>(s, uint16_t(channels * (bits / 8)));
  append<uint16_t>(s, bits);
  s += "data";
  append<uint32_t>(s, claimed);
  return s + data;
}

std::string floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> tone(size_t n, float amp = 0.3f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = amp * std::sin(0.05f * float(i)) + 0.1f * std::sin(0.013f * float(i));
  return v;
}

// A .npy v1.0 file with the given header dict and payload.
std::string npy(const std::string& dict, const std::string& payload) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string s = "\x93NUMPY";
  s += char(1);
  s += char(0);
  append<uint16_t>(s, uint16_t(header.size()));
  return s + header + payload;
}

const std::string kCkpt = fixture("wavtokenizer-75/model.ckpt");
const std::string kWav = fixture("wavtokenizer-75/speech.input.wav");
std::string kModel();  // the fixture model converted to .wtk (loads faster than the checkpoint under sanitizers)

class CliBadInput : public ::testing::Test {
 public:
  static std::string shared_model() { return shared_ + "/model.wtk"; }

 protected:
  static void SetUpTestSuite() {
    // One real .wtk and one real token file, made once, to truncate and corrupt below.
    // Per process: ctest runs each test in its own process, several at once.
    shared_ = scratch_dir("CliBadInput_shared_" + std::to_string(::getpid()));
    ASSERT_EQ(run({"convert", kCkpt, "-o", shared_ + "/model.wtk", "-q"}).code, 0);
    ASSERT_EQ(run({"encode", kWav, "-m", shared_ + "/model.wtk", "-o", shared_ + "/speech.wtt", "-q"}).code, 0);
    wtk_ = slurp(shared_ + "/model.wtk");
    wtt_ = slurp(shared_ + "/speech.wtt");
  }
  static void TearDownTestSuite() { fs::remove_all(shared_); }
  void SetUp() override { dir = scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name()); }

  std::string path(const std::string& n) const { return dir + "/" + n; }
  std::string put(const std::string& name, const std::string& data) const {
    write_bytes(path(name), data);
    return path(name);
  }
  // Every entry under the scratch folder with its bytes (folders as "<folder>").
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> files;
    for (auto& e : fs::recursive_directory_iterator(dir))
      files[e.path().string()] = e.is_directory() ? "<folder>" : slurp(e.path().string());
    return files;
  }
  // Runs a command that must fail with exit code 1 and an error mentioning every needle, leaving the scratch
  // folder exactly as it was: no new (partial or temporary) file, no changed input.
  void expect_failure(std::vector<std::string> args, const std::vector<std::string>& needles) const {
    const auto before = snapshot();
    const Result r = run(args);
    std::string cmd;
    for (auto& a : args) cmd += a + " ";
    EXPECT_EQ(r.code, 1) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find("wavtok: error: "), std::string::npos) << cmd << "\n" << r.err;
    for (const auto& n : needles)
      EXPECT_NE(r.err.find(n), std::string::npos) << cmd << "\nwanted '" << n << "' in:\n" << r.err;
    const auto after = snapshot();
    EXPECT_EQ(after.size(), before.size()) << cmd << " left files behind";
    for (const auto& [name, bytes] : before) {
      auto it = after.find(name);
      ASSERT_NE(it, after.end()) << cmd << " removed " << name;
      EXPECT_TRUE(it->second == bytes) << cmd << " changed " << name;
    }
  }

  std::string dir;
  static inline std::string shared_, wtk_, wtt_;
};

std::string kModel() { return CliBadInput::shared_model(); }

// ---- audio input (encode) ----

TEST_F(CliBadInput, ZeroLengthTruncatedAndNonAudioFiles) {
  const std::string good = wav(3, 1, 24000, 32, floats(tone(4800)));
  const std::string empty = put("empty.wav", "");
  const std::string header_only = put("header_only.wav", good.substr(0, 44));
  const std::string half_header = put("half_header.wav", good.substr(0, 20));
  const std::string text = put("notes.wav", "these are my notes, not audio\n");
  const std::string ckpt_as_audio = put("model.wav", slurp(kCkpt).substr(0, 4096));
  std::string png = "\x89PNG\r\n\x1a\n";
  png += std::string(200, '\x01');
  const std::string image = put("picture.wav", png);
  for (const auto& f : {empty, header_only, half_header, text, ckpt_as_audio, image})
    expect_failure({"encode", f, "-m", kModel(), "-o", path("out.wtt")}, {f});
  expect_failure({"encode", header_only, "-m", kModel(), "-o", path("out.wtt")}, {"no audio frames"});
  expect_failure({"roundtrip", text, "-m", kModel(), "-o", path("out.wav")}, {"cannot read as audio"});
}

TEST_F(CliBadInput, TruncatedDataIsReadAsFarAsItGoes) {
  // A WAV whose data chunk claims more than the file holds is a cut-off recording: the samples present are used.
  const std::string cut = put("cut.wav", wav(3, 1, 24000, 32, floats(tone(4800)), 4800 * 4 * 100));
  ASSERT_EQ(run({"encode", cut, "-m", kModel(), "-o", path("t.wtt"), "-q"}).code, 0);
  EXPECT_EQ(read_tokens(path("t.wtt")).tokens.frames, 4800 / 320);
}

TEST_F(CliBadInput, NanAndInfSamples) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = tone(4800);
    x[777] = bad;
    const std::string f = put("bad.wav", wav(3, 1, 24000, 32, floats(x)));
    expect_failure({"encode", f, "-m", kModel(), "-o", path("out.wtt")}, {f, "NaN/Inf at sample 777"});
    expect_failure({"roundtrip", f, "-m", kModel(), "-o", path("out.wav")}, {"NaN/Inf"});
  }
  // Finite samples near FLT_MAX in a 44.1 kHz file: resampling to 24 kHz would overflow them to Inf.
  std::vector<float> loud = tone(4410);
  for (size_t i = 0; i < loud.size(); i += 2) loud[i] = 3.0e38f;
  const std::string l = put("loud.wav", wav(3, 1, 44100, 32, floats(loud)));
  expect_failure({"encode", l, "-m", kModel(), "-o", path("out.wtt")}, {l, "resampling to 24000 Hz overflows"});
  // In one channel of a stereo file: the message names the channel.
  std::vector<float> st(2 * 4800, 0.1f);
  st[2 * 100 + 1] = std::numeric_limits<float>::infinity();
  const std::string f = put("stereo.wav", wav(3, 2, 24000, 32, floats(st)));
  expect_failure({"encode", f, "-m", kModel(), "-o", path("out.wtt")}, {"sample 100 (channel 1)"});
}

TEST_F(CliBadInput, ZeroAndAbsurdSampleRates) {
  const std::string pcm(9600, '\0');
  for (uint32_t rate : {0u, 768001u, 4'000'000'000u}) {
    const std::string f = put("rate.wav", wav(1, 1, rate, 16, pcm));
    const Result r = run({"encode", f, "-m", kModel(), "-o", path("out.wtt")});
    EXPECT_EQ(r.code, 1) << rate << ": " << r.err;
    // libsndfile refuses some of these itself, the reader the others; either way the file is named.
    EXPECT_NE(r.err.find(f), std::string::npos) << rate << ": " << r.err;
    EXPECT_TRUE(r.err.find("sample rate") != std::string::npos ||
                r.err.find("cannot read as audio") != std::string::npos)
        << rate << ": " << r.err;
    EXPECT_FALSE(fs::exists(path("out.wtt")));
  }
  expect_failure({"encode", put("r.wav", wav(1, 1, 768001, 16, pcm)), "-m", kModel(), "-o", path("out.wtt")},
                 {"unsupported sample rate 768001"});
}

TEST_F(CliBadInput, EightChannelsAreDownmixed) {
  // Eight identical channels average to the mono signal, so the tokens equal the mono file's.
  const std::vector<float> mono = tone(9600);
  std::vector<float> multi(8 * mono.size());
  for (size_t i = 0; i < mono.size(); ++i)
    for (int c = 0; c < 8; ++c) multi[8 * i + c] = mono[i];
  const std::string m1 = put("mono.wav", wav(3, 1, 24000, 32, floats(mono)));
  const std::string m8 = put("eight.wav", wav(3, 8, 24000, 32, floats(multi)));
  const std::string m8_before = slurp(m8);
  ASSERT_EQ(run({"encode", m1, "-m", kModel(), "-o", path("mono.wtt"), "-q"}).code, 0);
  const Result r = run({"encode", m8, "-m", kModel(), "-o", path("eight.wtt"), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  const TokenFile a = read_tokens(path("mono.wtt")), b = read_tokens(path("eight.wtt"));
  EXPECT_EQ(b.tokens.frames, 9600 / 320);
  EXPECT_EQ(a.tokens.codes, b.tokens.codes);
  EXPECT_EQ(slurp(m8), m8_before);
  // More channels than the reader accepts (65) is refused, naming the limit.
  const std::string m65 = put("many.wav", wav(1, 65, 24000, 16, std::string(65 * 2 * 100, '\0')));
  const Result r65 = run({"encode", m65, "-m", kModel(), "-o", path("many.wtt")});
  EXPECT_EQ(r65.code, 1);
  EXPECT_NE(r65.err.find(m65), std::string::npos) << r65.err;
  EXPECT_FALSE(fs::exists(path("many.wtt")));
}

// ---- token files (decode) ----

TEST_F(CliBadInput, BrokenTokenFiles) {
  const std::string empty = put("empty.wtt", "");
  const std::string trunc_header = put("trunc_header.wtt", wtt_.substr(0, 30));
  const std::string trunc_codes = put("trunc_codes.wtt", wtt_.substr(0, wtt_.size() - 2));
  std::string magic = wtt_;
  magic[3] = 'X';
  const std::string bad_magic = put("magic.wtt", magic);
  std::string huge = wtt_;
  const uint64_t frames = uint64_t(1) << 40;
  std::memcpy(huge.data() + 40, &frames, 8);
  const std::string huge_frames = put("huge.wtt", huge);
  std::string nq = wtt_;
  const uint32_t many = 1u << 30;
  std::memcpy(nq.data() + 32, &many, 4);
  const std::string huge_nq = put("huge_nq.wtt", nq);
  std::string trailing = wtt_ + "junk";
  const std::string trail = put("trail.wtt", trailing);
  const std::string out = path("out.wav");
  expect_failure({"decode", empty, "-m", kModel(), "-o", out}, {empty, "empty"});
  expect_failure({"decode", trunc_header, "-m", kModel(), "-o", out}, {trunc_header});
  expect_failure({"decode", trunc_codes, "-m", kModel(), "-o", out}, {trunc_codes, "truncated"});
  expect_failure({"decode", bad_magic, "-m", kModel(), "-o", out}, {bad_magic, "not a token"});
  expect_failure({"decode", huge_frames, "-m", kModel(), "-o", out}, {huge_frames, "claims 1099511627776 frames"});
  expect_failure({"decode", huge_nq, "-m", kModel(), "-o", out}, {huge_nq, "claims 1073741824 codebooks"});
  expect_failure({"decode", trail, "-m", kModel(), "-o", out}, {trail, "trailing bytes"});
}

TEST_F(CliBadInput, BrokenNpyTokensAndLatents) {
  const std::string out = path("out.wav");
  // Absurd shapes: far more elements than the file holds, and a product that overflows 64 bits.
  const std::string big =
      put("big.npy",
          npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1, 1099511627776), }", std::string(64, '\0')));
  const std::string overflow = put(
      "overflow.npy",
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", std::string(64, '\0')));
  const std::string empty = put("empty.npy", "");
  const std::string truncated =
      put("trunc.npy", npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1, 300), }", std::string(100, '\0')));
  const std::string bad_magic = put("magic.npy", "\x93NUMPZ" + std::string(120, ' '));
  const std::string floats_as_tokens =
      put("lat.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 4), }", std::string(16, '\0')));
  expect_failure({"decode", big, "-m", kModel(), "-o", out}, {big, "does not match"});
  expect_failure({"decode", overflow, "-m", kModel(), "-o", out}, {overflow, "does not match"});
  expect_failure({"decode", empty, "-m", kModel(), "-o", out}, {empty});
  expect_failure({"decode", truncated, "-m", kModel(), "-o", out}, {truncated});
  expect_failure({"decode", bad_magic, "-m", kModel(), "-o", out}, {bad_magic});
  expect_failure({"decode", floats_as_tokens, "-m", kModel(), "-o", out}, {"floating-point"});
  // The same files as latents.
  expect_failure({"decode", big, "--latents", "-m", kModel(), "-o", out}, {big});
  expect_failure({"decode", overflow, "--latents", "-m", kModel(), "-o", out}, {overflow});
  expect_failure({"decode", empty, "--latents", "-m", kModel(), "-o", out}, {empty});
  expect_failure({"decode", floats_as_tokens, "--latents", "-m", kModel(), "-o", out}, {"expects (1, 64, frames)"});
  std::vector<float> nan(64 * 3, 0.5f);
  nan[70] = std::numeric_limits<float>::quiet_NaN();
  const std::string nan_lat =
      put("nan.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 64, 3), }", floats(nan)));
  expect_failure({"decode", nan_lat, "--latents", "-m", kModel(), "-o", out}, {"NaN/Inf at index 70"});
  expect_failure({"requantize", nan_lat, "-m", kModel(), "-o", path("out.wtt")}, {"NaN/Inf"});
}

// ---- model files ----

TEST_F(CliBadInput, BrokenModelFiles) {
  const std::string out = path("out.wtt");
  const std::string empty = put("empty.wtk", "");
  const std::string trunc_header = put("trunc_header.wtk", wtk_.substr(0, 20));
  const std::string trunc_table = put("trunc_table.wtk", wtk_.substr(0, 1000));
  const std::string trunc_data = put("trunc_data.wtk", wtk_.substr(0, wtk_.size() - 4096));
  std::string version = wtk_;
  version[8] = 9;
  const std::string bad_version = put("version.wtk", version);
  std::string magic = wtk_;
  magic[0] = 'X';
  const std::string bad_magic = put("magic.wtk", magic);
  // The first tensor with two or more dims claims 2^20 x 2^20 floats (4 TiB), with a byte count to match.
  uint64_t ylen = 0;
  std::memcpy(&ylen, wtk_.data() + 16, 8);
  size_t at = 32 + ylen;
  uint32_t name_len = 0, nd = 0;
  for (;;) {  // table entry: u32 name length, name, u32 dtype, u32 ndim, i64 dims[ndim], u64 offset, u64 bytes
    ASSERT_LT(at + 12, wtk_.size());
    std::memcpy(&name_len, wtk_.data() + at, 4);
    std::memcpy(&nd, wtk_.data() + at + 4 + name_len + 4, 4);
    if (nd >= 2) break;
    at += 4 + name_len + 8 + 8 * nd + 16;
  }
  std::string tb = wtk_;
  const size_t dims = at + 4 + name_len + 8;
  for (uint32_t d = 0; d < nd; ++d) {
    const int64_t v = d < 2 ? int64_t(1) << 20 : 1;
    std::memcpy(tb.data() + dims + 8 * d, &v, 8);
  }
  const uint64_t nb = uint64_t(1) << 42;
  std::memcpy(tb.data() + dims + 8 * nd + 8, &nb, 8);
  const std::string terabytes = put("terabytes.wtk", tb);
  std::string cnt = wtk_;
  const uint64_t count = uint64_t(1) << 40;
  std::memcpy(cnt.data() + 24, &count, 8);
  const std::string many = put("many.wtk", cnt);
  std::string cfg = wtk_;
  std::memcpy(cfg.data() + 16, &count, 8);
  const std::string huge_config = put("huge_config.wtk", cfg);

  expect_failure({"encode", kWav, "-m", empty, "-o", out}, {empty});
  expect_failure({"encode", kWav, "-m", trunc_header, "-o", out}, {trunc_header, "truncated"});
  expect_failure({"encode", kWav, "-m", trunc_table, "-o", out}, {trunc_table, "truncated"});
  expect_failure({"encode", kWav, "-m", trunc_data, "-o", out}, {trunc_data, "beyond the end of the file"});
  expect_failure({"encode", kWav, "-m", bad_version, "-o", out}, {bad_version, "version 9 is not supported"});
  expect_failure({"encode", kWav, "-m", bad_magic, "-o", out}, {bad_magic});
  expect_failure({"encode", kWav, "-m", terabytes, "-o", out}, {terabytes, "beyond the end of the file"});
  expect_failure({"encode", kWav, "-m", many, "-o", out}, {many, "too many tensors"});
  expect_failure({"encode", kWav, "-m", huge_config, "-o", out}, {huge_config, "config section too large"});
  expect_failure({"info", terabytes}, {terabytes});
}

TEST_F(CliBadInput, BrokenCheckpoints) {
  const std::string ckpt = slurp(kCkpt);
  const std::string out = path("out.wtt");
  const std::string empty = put("empty.ckpt", "");
  const std::string trunc = put("trunc.ckpt", ckpt.substr(0, ckpt.size() - 100));
  std::string flipped = ckpt;
  flipped[flipped.size() / 3] ^= 0x40;  // inside a stored tensor: the zip CRC catches it
  const std::string corrupt = put("corrupt.ckpt", flipped);
  for (const auto& f : {empty, trunc, corrupt})
    expect_failure({"encode", kWav, "-m", f, "--config", fixture("wavtokenizer-75/config.yaml"), "-o", out}, {f});
}

// ---- outputs ----

TEST_F(CliBadInput, UnwritableOutputLocations) {
  fs::copy_file(kWav, path("in.wav"));
  // /proc is a folder where no regular file can be created, even by root (chmod would not stop root).
  const Result r = run({"encode", path("in.wav"), "-m", kModel(), "-o", "/proc/wavtok-badinput.wtt"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/proc/wavtok-badinput.wtt"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists("/proc/wavtok-badinput.wtt"));
  const Result r2 = run({"roundtrip", path("in.wav"), "-m", kModel(), "-o", "/proc/wavtok-badinput.wav"});
  EXPECT_EQ(r2.code, 1);
  EXPECT_NE(r2.err.find("/proc/wavtok-badinput.wav"), std::string::npos) << r2.err;
  // A parent that is a regular file, not a folder.
  expect_failure({"encode", path("in.wav"), "-m", kModel(), "-o", path("in.wav/out.wtt")}, {"does not exist"});
  expect_failure({"decode", shared_ + "/speech.wtt", "-m", kModel(), "-o", path("in.wav/out.wav")}, {"does not exist"});
  // The output is an existing folder.
  fs::create_directory(path("folder.wav"));
  expect_failure({"roundtrip", path("in.wav"), "-m", kModel(), "-o", path("folder.wav")}, {"is a folder"});
}

// Out-of-range and non-numeric option values are usage errors (status 2) found before anything runs; NaN, which
// passes a plain range check, is refused too.
TEST_F(CliBadInput, OptionValuesOutOfRange) {
  const std::string wav_in = put("in.wav", wav(3, 1, 24000, 32, floats(tone(4800)))), wtt_in = put("in.wtt", wtt_);
  auto usage_error = [&](std::vector<std::string> args, const std::string& needle) {
    const auto before = snapshot();
    const Result r = run(args);
    std::string cmd;
    for (auto& a : args) cmd += a + " ";
    EXPECT_EQ(r.code, 2) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << cmd << "\nwanted '" << needle << "' in:\n" << r.err;
    EXPECT_EQ(snapshot().size(), before.size()) << cmd << " left files behind";
  };
  const std::string out = path("out.wtt");
  for (const char* bw : {"-1", "0", "nan", "inf", "3x"})
    usage_error({"encode", wav_in, "-m", kModel(), "-o", out, "-b", bw}, "--bandwidth: ");
  usage_error({"encode", wav_in, "-m", kModel(), "-o", out, "-n", "0"}, "--n-q: ");
  usage_error({"roundtrip", wav_in, "-m", kModel(), "-o", path("o.wav"), "-n", "-2"}, "--n-q: ");
  usage_error({"decode", wtt_in, "-m", kModel(), "-o", path("o.wav"), "--bandwidth-id", "-1"}, "--bandwidth-id: ");
  for (const char* ms : {"0", "-20", "nan", "1e12"}) {
    usage_error({"stream-encode", wav_in, "-m", kModel(), "-o", out, "--chunk-ms", ms}, "--chunk-ms: ");
    usage_error({"stream-decode", wtt_in, "-m", kModel(), "-o", path("o.wav"), "--chunk-ms", ms}, "--chunk-ms: ");
  }
  usage_error({"eval", wav_in, wav_in, "--rate", "-5"}, "--rate: ");
  usage_error({"eval", wav_in, wav_in, "--bitrate", "nan"}, "--bitrate: ");
  usage_error({"bench", "--seconds", "nan"}, "--seconds: ");
  usage_error({"bench", "--stream-seconds", "0"}, "--stream-seconds: ");
  usage_error({"encode", wav_in, "-m", kModel(), "-o", out, "--threads", "0"}, "--threads: ");
  // Valid as numbers, refused once the model is known: a failed run (status 1).
  expect_failure({"stream-encode", wav_in, "-m", kModel(), "-o", out, "--chunk-ms", "0.01"},
                 {"--chunk-ms 0.010000 is less than one sample at 24000 Hz"});
  expect_failure({"stream-encode", "-", "-m", kModel(), "-o", out, "--chunk-ms", "3600000", "--channels", "2"},
                 {"a stdin chunk may hold at most 16777216 samples (all channels), this one 172800000"});
  expect_failure({"stream-encode", wav_in, "-m", kModel(), "-o", out, "--s16"},
                 {"--s16, --rate and --channels describe raw PCM on stdin"});
}

TEST_F(CliBadInput, OutputEqualToInput) {
  fs::copy_file(kWav, path("in.wav"));
  fs::copy_file(shared_ + "/speech.wtt", path("t.wtt"));
  fs::create_hard_link(path("in.wav"), path("link.wav"));
  expect_failure({"roundtrip", path("in.wav"), "-m", kModel(), "-o", path("in.wav")}, {"same file"});
  expect_failure({"encode", path("in.wav"), "-m", kModel(), "-o", path("in.wav"), "--format", "wtt"}, {"same file"});
  expect_failure({"decode", path("t.wtt"), "-m", kModel(), "-o", path("t.wtt")}, {"same file"});
  // The same file under another name: a hard link, and a path with "." and ".." in it.
  expect_failure({"roundtrip", path("in.wav"), "-m", kModel(), "-o", path("link.wav")}, {"same file"});
  expect_failure({"roundtrip", path("in.wav"), "-m", kModel(), "-o",
                  dir + "/./../" + fs::path(dir).filename().string() + "/in.wav"},
                 {"same file"});
  // --latents output onto the input.
  expect_failure({"encode", path("in.wav"), "-m", kModel(), "--latents", path("in.wav")}, {"same file"});
  // A model file as its own output.
  fs::copy_file(shared_ + "/model.wtk", path("m.wtk"));
  expect_failure({"convert", path("m.wtk"), "-o", path("m.wtk")}, {"same file"});
}

}  // namespace
}  // namespace wavtok
