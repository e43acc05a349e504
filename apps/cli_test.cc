// The CLI on good and bad input: exit codes, error texts, no partial outputs, inputs untouched.
#include "apps/cli.h"

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <sndfile.h>
#include <yaml-cpp/yaml.h>

#include "apps/cli_test_util.h"
#include "codec/default_model.h"
#include "core/dnnl_util.h"
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
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary);
  f << data;
}

const std::string kCkpt = fixture("wavtokenizer-75/model.ckpt");
const std::string kCfg = fixture("wavtokenizer-75/config.yaml");
const std::string kWav = fixture("wavtokenizer-75/speech.input.wav");

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { dir = scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name()); }
  std::string path(const std::string& n) const { return dir + "/" + n; }
  // Only the named files exist in the scratch folder (no partial or temp outputs).
  void expect_only(std::set<std::string> names) const {
    std::set<std::string> have;
    for (auto& e : fs::directory_iterator(dir)) have.insert(e.path().filename().string());
    EXPECT_EQ(have, names);
  }
  std::string dir;
};

TEST_F(CliTest, EncodeDecodeRoundTripThroughFiles) {
  auto r = run({"encode", kWav, "-m", kCkpt, "-o", path("t.wtt"), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  TokenFile tf = read_tokens(path("t.wtt"));
  EXPECT_EQ(tf.tokens.n_q, 1);
  EXPECT_EQ(tf.tokens.frames, 300);
  EXPECT_EQ(tf.sample_rate, 24000);
  // npy export matches the fixture's layout and values.
  ASSERT_EQ(run({"encode", kWav, "-m", kCkpt, "-o", path("t.npy"), "-q"}).code, 0);
  auto codes = npy_ints(path("t.npy"));
  auto ref = npy_ints(fixture("wavtokenizer-75/speech.codes.npy"));
  ASSERT_EQ(codes.size(), ref.size());
  size_t same = 0;
  for (size_t i = 0; i < ref.size(); ++i) same += codes[i] == ref[i];
  EXPECT_GE(same, ref.size() * 99 / 100);
  r = run({"decode", path("t.wtt"), "-m", kCkpt, "-o", path("y.wav"), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_audio(path("y.wav"), 24000).samples.size(), 96000u);
  ASSERT_EQ(run({"encode", kWav, "-m", kCkpt, "-o", path("t.txt"), "-q"}).code, 0);
  EXPECT_EQ(read_tokens(path("t.txt")).tokens.codes, tf.tokens.codes);
}

// stream-encode gives the one-shot codes (the streaming encoder is exact) at any chunk size, with or without
// --warm-up; stream-decode gives the whole clip, the same samples with or without --warm-up; bad options fail.
TEST_F(CliTest, StreamEncodeAndDecode) {
  ASSERT_EQ(run({"encode", kWav, "-m", kCkpt, "-o", path("one.wtt"), "-q"}).code, 0);
  const auto one_shot = read_tokens(path("one.wtt")).tokens.codes;
  auto r = run({"stream-encode", kWav, "-m", kCkpt, "-o", path("s.wtt")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("per-chunk ms p50"), std::string::npos) << r.err;
  EXPECT_EQ(read_tokens(path("s.wtt")).tokens.codes, one_shot);
  r = run({"stream-encode", kWav, "-m", kCkpt, "-o", path("w.wtt"), "--warm-up", "--chunk-ms", "7"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warm-up: "), std::string::npos) << r.err;
  EXPECT_EQ(read_tokens(path("w.wtt")).tokens.codes, one_shot);
  ASSERT_EQ(run({"stream-decode", path("s.wtt"), "-m", kCkpt, "-o", path("s.wav"), "-q"}).code, 0);
  ASSERT_EQ(run({"stream-decode", path("s.wtt"), "-m", kCkpt, "-o", path("w.wav"), "-q", "--warm-up"}).code, 0);
  const auto a = read_audio(path("s.wav"), 24000).samples, b = read_audio(path("w.wav"), 24000).samples;
  EXPECT_EQ(a.size(), 96000u);
  EXPECT_EQ(a, b);
  // --config names the release config.yaml (here the one beside the checkpoint, so the same codes).
  ASSERT_EQ(run({"stream-encode", kWav, "-m", kCkpt, "--config", kCfg, "-o", path("c.wtt"), "-q"}).code, 0);
  EXPECT_EQ(read_tokens(path("c.wtt")).tokens.codes, one_shot);
  EXPECT_NE(run({"stream-encode", kWav, "-m", kCkpt, "-o", path("x.wtt"), "--preset", "nope"}).code, 0);
  EXPECT_NE(run({"stream-encode", kWav, "-m", kCkpt, "-o", path("x.wtt"), "--precision", "f16"}).code, 0);
  EXPECT_NE(run({"stream-decode", path("s.wtt"), "-m", kCkpt, "--config", path("none.yaml"), "-o", path("x.wav")}).code,
            0);
  EXPECT_NE(run({"stream-decode", path("missing.wtt"), "-m", kCkpt, "-o", path("x.wav")}).code, 0);
  expect_only({"one.wtt", "s.wtt", "w.wtt", "c.wtt", "s.wav", "w.wav"});
}

// The built `wavtok` binary run through a shell (pipes between processes); returns its exit status.
int shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
const std::string kBin = std::string(WAVTOK_BINARY_DIR) + "/wavtok";

// Waits until `path` holds at least `bytes` bytes (a process writing it through a pipe); false after 120 s.
bool wait_for_size(const std::string& path, uintmax_t bytes) {
  for (int i = 0; i < 1200; ++i) {
    std::error_code ec;
    if (fs::exists(path, ec) && fs::file_size(path, ec) >= bytes) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::vector<float> raw_floats(const std::string& p) {
  const std::string b = slurp(p);
  std::vector<float> v(b.size() / sizeof(float));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(float));
  return v;
}

// Live pipes: stream-encode writes frame lines to stdout and stream-decode reads them from stdin and writes raw PCM,
// each as soon as it has them (checked by feeding part of a stream and waiting for its output before the rest);
// the outputs equal the file-based commands' exactly; bad frame lines fail with the line number.
TEST_F(CliTest, StreamThroughPipes) {
  const std::string m = " -m " + kCkpt + " -q";
  ASSERT_EQ(run({"encode", kWav, "-m", kCkpt, "-o", path("one.wtt"), "-q"}).code, 0);
  const Tokens one = read_tokens(path("one.wtt")).tokens;
  std::string lines;  // the one-shot codes as frame lines
  for (int64_t f = 0; f < one.frames; ++f) lines += std::to_string(one.codes[size_t(f)]) + "\n";
  ASSERT_EQ(shell(kBin + " stream-encode " + kWav + m + " -o - > " + path("s.txt")), 0);
  EXPECT_EQ(slurp(path("s.txt")), lines);
  // Raw float32 PCM on stdin (the path live input takes).
  const auto pcm = read_audio(kWav, 24000).samples;
  write_bytes(path("in.f32"), std::string(reinterpret_cast<const char*>(pcm.data()), pcm.size() * sizeof(float)));
  ASSERT_EQ(shell(kBin + " stream-encode -" + m + " --chunk-ms 13 -o - < " + path("in.f32") + " > " + path("p.txt")),
            0);
  EXPECT_EQ(slurp(path("p.txt")), lines);

  ASSERT_EQ(run({"stream-decode", path("one.wtt"), "-m", kCkpt, "-o", path("f.wav"), "-q"}).code, 0);
  const auto ref = read_audio(path("f.wav"), 24000).samples;
  ASSERT_EQ(shell(kBin + " stream-decode -" + m + " -o - < " + path("s.txt") + " > " + path("o.f32")), 0);
  EXPECT_EQ(raw_floats(path("o.f32")), ref);
  ASSERT_EQ(shell(kBin + " stream-decode " + path("one.wtt") + m + " -o - --s16 > " + path("o.s16")), 0);
  const std::string s16 = slurp(path("o.s16"));
  ASSERT_EQ(s16.size(), ref.size() * 2);
  for (size_t i = 0; i < ref.size(); i += 997) {
    int16_t v;
    std::memcpy(&v, s16.data() + 2 * i, 2);
    EXPECT_EQ(v, std::lrint(std::clamp(ref[i] * 32768.0f, -32768.0f, 32767.0f))) << i;
  }

  // Liveness: 94 frames in, then wait (stdin still open) for the audio of the 70 frames the default preset has
  // final by then (blocks of 10 while block + lookahead 15 frames have arrived).
  {
    FILE* p = popen((kBin + " stream-decode -" + m + " -o - > " + path("live.f32")).c_str(), "w");
    ASSERT_NE(p, nullptr);
    size_t at = 0;
    for (int f = 0; f < 94; ++f) at = lines.find('\n', at) + 1;
    std::fwrite(lines.data(), 1, at, p);
    std::fflush(p);
    EXPECT_TRUE(wait_for_size(path("live.f32"), 70 * 320 * sizeof(float)));
    std::error_code ec;
    EXPECT_EQ(fs::file_size(path("live.f32"), ec), 70 * 320 * sizeof(float));  // and not more, yet
    std::fwrite(lines.data() + at, 1, lines.size() - at, p);
    const int st = pclose(p);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    EXPECT_EQ(raw_floats(path("live.f32")), ref);
  }
  {
    FILE* p = popen((kBin + " stream-encode -" + m + " -o - > " + path("live.txt")).c_str(), "w");
    ASSERT_NE(p, nullptr);
    std::fwrite(pcm.data(), sizeof(float), 24000, p);  // 1 s: 75 frames, of which all but <= 4 are final
    std::fflush(p);
    size_t at = 0;
    for (int f = 0; f < 71; ++f) at = lines.find('\n', at) + 1;
    EXPECT_TRUE(wait_for_size(path("live.txt"), at));
    const std::string early = slurp(path("live.txt"));
    EXPECT_GE(std::count(early.begin(), early.end(), '\n'), 71);
    EXPECT_EQ(early, lines.substr(0, early.size()));
    std::fwrite(pcm.data() + 24000, sizeof(float), pcm.size() - 24000, p);
    const int st = pclose(p);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    EXPECT_EQ(slurp(path("live.txt")), lines);
  }

  // NaN in stdin PCM: refused with its sample index; no output file.
  std::vector<float> nan_pcm(pcm.begin(), pcm.begin() + 24000);
  nan_pcm[12345] = std::nanf("");
  write_bytes(path("nan.f32"), std::string(reinterpret_cast<const char*>(nan_pcm.data()), nan_pcm.size() * 4));
  EXPECT_EQ(shell(kBin + " stream-encode -" + m + " -o " + path("nan.wtt") + " < " + path("nan.f32") + " 2> " +
                  path("err.txt")),
            1);
  EXPECT_NE(slurp(path("err.txt")).find("stdin: sample 12345 is NaN"), std::string::npos) << slurp(path("err.txt"));
  fs::remove(path("nan.f32"));

  // Bad frame lines: the line number and the problem, non-zero exit.
  auto bad = [&](const std::string& text, const std::string& want) {
    write_bytes(path("bad.txt"), text);
    EXPECT_NE(shell(kBin + " stream-decode -" + m + " -o " + path("x.wav") + " < " + path("bad.txt") + " 2> " +
                    path("err.txt")),
              0)
        << text;
    EXPECT_NE(slurp(path("err.txt")).find(want), std::string::npos) << slurp(path("err.txt"));
  };
  bad("1\n2\n3 4\n", "stdin line 3: more than 1 codes on one line (one per codebook)");
  bad("1\n\n512\n", "stdin line 3: token 512 is outside this model's codebook (0..511)");
  bad("7\nx1\n", "stdin line 2: 'x1' is not a token");
  bad("5\n-1\n", "stdin line 2: '-1' is not a token");
  bad("\n\n", "stdin: no token frames");
  bad("1\n" + std::string(70000, '7'), "stdin line 2: line longer than 64 KiB");
  bad(std::string("1\n\0\x93NUMPY\n", 11), "stdin line 2: '\\x00\\x93NUMPY' is not a token");
  // A codebook count that changes mid-stream (EnCodec: up to 32 per frame).
  write_bytes(path("bad.txt"), "1 2\n3 4\n5\n");
  EXPECT_NE(shell(kBin + " stream-decode - -m " + fixture("encodec-24k/model.th") + " -o - < " + path("bad.txt") +
                  " > /dev/null 2> " + path("err.txt")),
            0);
  EXPECT_NE(slurp(path("err.txt")).find("stdin line 3: 1 codes, the stream's first frame had 2"), std::string::npos)
      << slurp(path("err.txt"));
  EXPECT_NE(run({"stream-decode", path("one.wtt"), "-m", kCkpt, "-o", path("x.wav"), "--s16"}).code, 0);
  EXPECT_NE(run({"stream-encode", kWav, "-m", kCkpt, "-o", "-", "--format", "npy"}).code, 0);
  fs::remove(path("bad.txt"));
  fs::remove(path("err.txt"));
  expect_only({"one.wtt", "s.txt", "in.f32", "p.txt", "f.wav", "o.f32", "o.s16", "live.f32", "live.txt"});
}

// Live input at another rate and channel count (--rate, --channels on stdin) streams through a resampler and
// gives the tokens of the same audio read from a file; --rate on the decoder gives the model-rate audio resampled.
TEST_F(CliTest, StreamsAtOtherRatesAndChannels) {
  const std::string m = " -m " + kCkpt + " -q";
  // 48 kHz stereo s16 on stdin; the same audio, averaged to mono, as a 48 kHz float WAV file.
  const auto pcm48 = resample(read_audio(kWav, 24000).samples, 24000, 48000);
  std::vector<int16_t> stereo(pcm48.size() * 2);
  std::vector<float> mono(pcm48.size());
  for (size_t i = 0; i < pcm48.size(); ++i) {
    stereo[2 * i] = int16_t(std::lrint(std::clamp(pcm48[i] * 32768.0f, -32768.0f, 32767.0f)));
    stereo[2 * i + 1] = int16_t(std::lrint(std::clamp(pcm48[i] * 16384.0f, -32768.0f, 32767.0f)));
    mono[i] = (stereo[2 * i] / 32768.0f + stereo[2 * i + 1] / 32768.0f) / 2.0f;
  }
  write_bytes(path("in.s16"), std::string(reinterpret_cast<const char*>(stereo.data()), stereo.size() * 2));
  write_audio(path("mono48.wav"), mono, 48000);
  ASSERT_EQ(run({"stream-encode", path("mono48.wav"), "-m", kCkpt, "-o", path("file.wtt"), "-q"}).code, 0);
  ASSERT_EQ(shell(kBin + " stream-encode -" + m + " --rate 48000 --channels 2 --s16 --chunk-ms 30 -o " +
                  path("stdin.wtt") + " < " + path("in.s16")),
            0);
  const Tokens want = read_tokens(path("file.wtt")).tokens;
  EXPECT_EQ(want.frames, 300);
  EXPECT_EQ(read_tokens(path("stdin.wtt")).tokens.codes, want.codes);

  // Decoder output at 48 kHz, to a file and to stdout: the 24 kHz stream resampled.
  ASSERT_EQ(run({"stream-decode", path("file.wtt"), "-m", kCkpt, "-o", path("d24.wav"), "-q"}).code, 0);
  const auto ref = resample(read_audio(path("d24.wav"), 0).samples, 24000, 48000);
  ASSERT_EQ(run({"stream-decode", path("file.wtt"), "-m", kCkpt, "-o", path("d48.wav"), "--rate", "48000", "-q"}).code,
            0);
  const Audio d48 = read_audio(path("d48.wav"), 0);
  EXPECT_EQ(d48.sample_rate, 48000);
  ASSERT_NEAR(double(d48.samples.size()), double(ref.size()), 1.0);
  EXPECT_GE(snr_db(ref, d48.samples), 100.0);
  ASSERT_EQ(shell(kBin + " stream-decode " + path("file.wtt") + m + " --rate 48000 -o - > " + path("d48.f32")), 0);
  EXPECT_EQ(raw_floats(path("d48.f32")), d48.samples);

  // --rate / --channels / --s16 describe stdin: refused with a file.
  const CliResult r = run({"stream-encode", kWav, "-m", kCkpt, "-o", path("x.wtt"), "--rate", "48000"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("describe raw PCM on stdin"), std::string::npos) << r.err;
  expect_only({"in.s16", "mono48.wav", "file.wtt", "stdin.wtt", "d24.wav", "d48.wav", "d48.f32"});
}

// apps/stream_example.c (the C API's live loopback, plain C) gives exactly the CLI pipes' audio, for the windowed
// WavTokenizer decoder at two presets and for EnCodec's exact one; a bad model or preset exits 1 with the reason.
TEST_F(CliTest, CExampleMatchesTheCliPipes) {
  const std::string ex = std::string(WAVTOK_BINARY_DIR) + "/stream_example";
  const auto pcm = read_audio(kWav, 24000).samples;
  write_bytes(path("in.f32"), std::string(reinterpret_cast<const char*>(pcm.data()), pcm.size() * sizeof(float)));
  const std::string in = " < " + path("in.f32");
  for (const auto& [model, preset] : {std::pair<std::string, std::string>{kCkpt, "default"},
                                      {kCkpt, "low-latency"},
                                      {fixture("encodec-24k/model.th"), "default"}}) {
    const std::string m = " -m " + model + " --preset " + preset + " -q";
    ASSERT_EQ(shell(ex + " " + model + " " + preset + in + " > " + path("ex.f32") + " 2> " + path("err.txt")), 0);
    EXPECT_NE(slurp(path("err.txt")).find("300 frames"), std::string::npos) << slurp(path("err.txt"));
    ASSERT_EQ(shell(kBin + " stream-encode -" + m + " -o -" + in + " | " + kBin + " stream-decode -" + m + " -o - > " +
                    path("cli.f32")),
              0);
    const auto a = raw_floats(path("ex.f32")), b = raw_floats(path("cli.f32"));
    ASSERT_EQ(a.size(), pcm.size()) << model << " " << preset;
    if (model == kCkpt) EXPECT_EQ(a, b) << preset;  // windows: the same whatever the push sizes
    else  // EnCodec's layers see other run lengths (the example pushes what each chunk made): float rounding, 143 dB
      EXPECT_GE(snr_db(b, a), 120.0);
  }
  EXPECT_EQ(shell(ex + " " + path("none.ckpt") + in + " > /dev/null 2> " + path("err.txt")), 1);
  EXPECT_NE(slurp(path("err.txt")).find("none.ckpt"), std::string::npos) << slurp(path("err.txt"));
  EXPECT_EQ(shell(ex + " " + kCkpt + " nope" + in + " > /dev/null 2> " + path("err.txt")), 1);
  EXPECT_NE(slurp(path("err.txt")).find("unknown streaming preset 'nope'"), std::string::npos)
      << slurp(path("err.txt"));
}

// `wavtok bench` on the fixture model: the JSON file parses (no nan/inf), every figure is a positive time, and the
// streaming preset pushed ceil(2 s / 133.3 ms) = 15 blocks; a bad option fails without writing the file.
TEST_F(CliTest, BenchWritesParseableFigures) {
  auto r =
      run({"bench", "-m",       kCkpt,           "--config",     kCfg,      "--seconds",        "0.5", "--repeats",
           "1",     "--phases", "encode,decode", "--streaming",  "default", "--stream-seconds", "2",   "--no-memory",
           "-t",    "1",        "--json-out",    path("b.json"), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("flush() cold / warm / after warm-up"), std::string::npos) << r.err;
  YAML::Node j = YAML::LoadFile(path("b.json"));  // JSON is YAML
  EXPECT_EQ(j["arch"].as<std::string>(), "wavtokenizer");
  EXPECT_EQ(j["hop"].as<int>(), 320);
  auto positive_ms = [](const YAML::Node& n, const char* what) {
    const double v = n.as<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << what << " = " << v;
  };
  ASSERT_EQ(j["runs"].size(), 2u);
  for (const auto& run_ : j["runs"]) {
    positive_ms(run_["median_s"], "median_s");
    EXPECT_NEAR(run_["xrt"].as<double>(), 0.5 / run_["median_s"].as<double>(), 1e-3 * run_["xrt"].as<double>());
  }
  ASSERT_EQ(j["streaming"].size(), 1u);
  const YAML::Node s = j["streaming"][0];
  EXPECT_EQ(s["preset"].as<std::string>(), "default");
  EXPECT_EQ(s["block"].as<int>(), 10);
  EXPECT_EQ(s["chunks"].as<int>(), 15);
  EXPECT_GT(s["warm_up_shapes"].as<int>(), 0);  // a fresh model creates its primitives in the warm-up
  for (const char* k : {"encode_ms", "decode_ms", "after_warm_up_encode_ms", "after_warm_up_decode_ms",
                        "encode_flush_ms", "decode_flush_ms"})
    for (const auto& v : s[k]) positive_ms(v, k);
  for (const char* k : {"cold_encode_max_ms", "cold_decode_max_ms", "warm_up_ms"}) positive_ms(s[k], k);
  // Live: the first code needs at least the encoder's first frame of audio (one hop, 13.3 ms) plus a 20 ms chunk
  // boundary; the first audio needs the default preset's block + lookahead frames (25 frames, 333.3 ms) of codes.
  const double tok_audio = s["first_token_audio_ms"].as<double>(), aud_audio = s["first_audio_audio_ms"].as<double>();
  EXPECT_GE(tok_audio, 20.0);
  EXPECT_EQ(std::fmod(tok_audio, 20.0), 0.0);
  EXPECT_GE(aud_audio, 25 * 320 / 24.0);
  EXPECT_GT(aud_audio, tok_audio);
  EXPECT_GT(s["first_token_ms"].as<double>(), tok_audio);
  EXPECT_GT(s["first_audio_ms"].as<double>(), aud_audio);
  EXPECT_NE(run({"bench", "-m", kCkpt, "--streaming", "nope", "--seconds", "0.5", "--no-memory", "--json-out",
                 path("x.json"), "-q"})
                .code,
            0);
  auto bad = run({"bench", "-m", kCkpt, "--seconds", "0.5", "--no-memory", "--json-out", path("no/x.json"), "-q"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("does not exist"), std::string::npos) << bad.err;
  expect_only({"b.json"});
}

TEST_F(CliTest, VqPrecisionOption) {
  ASSERT_EQ(run({"encode", kWav, "-m", kCkpt, "-o", path("f.txt"), "-q"}).code, 0);
  auto r = run({"encode", kWav, "-m", kCkpt, "--vq-precision", "bf16", "-o", path("b.txt"), "-q"});
  if (bf16_supported()) {
    ASSERT_EQ(r.code, 0) << r.err;
    // The fixture's codes have no bf16 near ties left after the exact rescoring (models/vq_precision_test.cc).
    EXPECT_EQ(read_tokens(path("b.txt")).tokens.codes, read_tokens(path("f.txt")).tokens.codes);
  } else {  // float32, with a warning
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: --vq-precision bf16"), std::string::npos) << r.err;
    EXPECT_EQ(read_tokens(path("b.txt")).tokens.codes, read_tokens(path("f.txt")).tokens.codes);
  }
  // int8 shortlist with exact rescoring: the f32 search's codes (vq/rvq_int8_test.cc proves it in general).
  r = run({"encode", kWav, "-m", kCkpt, "--vq-precision", "int8", "-o", path("i.txt"), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_tokens(path("i.txt")).tokens.codes, read_tokens(path("f.txt")).tokens.codes);
  r = run({"encode", kWav, "-m", kCkpt, "--vq-precision", "int3", "-o", path("x.txt"), "-q"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--vq-precision must be f32, bf16 or int8"), std::string::npos) << r.err;
}

// On a CPU without native bf16 (here simulated by capping oneDNN's ISA, which bf16_supported() reads), --precision
// bf16 runs in float32: the same output as --precision f32, and a warning even with -q.
TEST_F(CliTest, Bf16FallsBackToFloat32) {
  const std::string m = " -m " + kCkpt;
  const std::string no_bf16 = "ONEDNN_MAX_CPU_ISA=AVX2 ";
  ASSERT_EQ(shell(no_bf16 + kBin + " roundtrip " + kWav + m + " -q -o " + path("f.wav")), 0);
  ASSERT_EQ(shell(no_bf16 + kBin + " roundtrip " + kWav + m + " -q --precision bf16 --vq-precision bf16 -o " +
                  path("b.wav") + " 2> " + path("err.txt")),
            0);
  EXPECT_NE(slurp(path("err.txt"))
                .find("warning: --precision bf16: this CPU has neither AVX512-BF16 nor AMX; "
                      "running in float32"),
            std::string::npos)
      << slurp(path("err.txt"));
  // The samples (the files' PEAK chunks carry a timestamp).
  EXPECT_TRUE(read_audio(path("b.wav"), 0).samples == read_audio(path("f.wav"), 0).samples);
  fs::remove(path("err.txt"));
  expect_only({"f.wav", "b.wav"});
}

// A file with bf16 encoder convs (recipe key encoder_convs: bf16): `info` says so; on a CPU without native bf16
// (simulated as above) it still encodes, in float32, with a warning even under -q.
TEST_F(CliTest, Bf16EncoderConvsFile) {
  fs::create_directories(path("calib"));
  fs::copy_file(kWav, path("calib/a.wav"));
  write_bytes(path("r.yaml"), "encoder_convs: bf16\nrules:\n  - match: '^head\\.out$'\n");
  auto r = run({"quantize", kCkpt, "--calib", path("calib"), "--recipe", path("r.yaml"), "-o", path("q.wtk"), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = run({"info", "-m", path("q.wtk")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("\nquantized:    int8 in 1 layer\n"), std::string::npos) << r.err;  // head.out
  EXPECT_NE(r.err.find(bf16_supported() ? "; bf16 convolutions\n" : "bf16 convolutions asked, float32 on this CPU"),
            std::string::npos)
      << r.err;
  const std::string no_bf16 = "ONEDNN_MAX_CPU_ISA=AVX2 ";
  ASSERT_EQ(shell(no_bf16 + kBin + " encode " + kWav + " -m " + path("q.wtk") + " -q --format txt -o " + path("t.txt") +
                  " 2> " + path("err.txt")),
            0);
  EXPECT_NE(slurp(path("err.txt")).find("warning: the model asks for bf16 encoder convolutions"), std::string::npos)
      << slurp(path("err.txt"));
  ASSERT_EQ(shell(kBin + " encode " + kWav + " -m " + path("q.wtk") + " -q --format txt -o " + path("n.txt") + " 2> " +
                  path("err2.txt")),
            0);
  // Natively: no warning, and bf16 ran (other tokens than float32 are likely but not certain on a short clip).
  EXPECT_EQ(slurp(path("err2.txt")).find("warning") == std::string::npos, bf16_supported()) << slurp(path("err2.txt"));
  if (!bf16_supported()) {
    EXPECT_EQ(slurp(path("t.txt")), slurp(path("n.txt")));  // float32 both times
  }
}

// The built-in GPTQ recipe by name: calibration gathers the encoder convs' input moments (else the recipe could not
// be applied), -v prints each conv's output error for both roundings, and the file encodes.
TEST_F(CliTest, QuantizeWithGptqRounding) {
  fs::create_directories(path("calib"));
  fs::copy_file(kWav, path("calib/a.wav"));
  auto r =
      run({"quantize", kCkpt, "--calib", path("calib"), "--recipe", "int8-e2e-group8-gptq", "-o", path("q.wtk"), "-v"});
  ASSERT_EQ(r.code, 0) << r.err;
  size_t lines = 0;
  for (size_t at = r.err.find("GPTQ: output error"); at != std::string::npos; at = r.err.find("GPTQ: output", at + 1))
    ++lines;
  EXPECT_EQ(lines, 18u) << r.err;
  ASSERT_EQ(run({"encode", kWav, "-m", path("q.wtk"), "-q", "--format", "txt", "-o", path("t.txt")}).code, 0);
  EXPECT_FALSE(slurp(path("t.txt")).empty());
}

// The shipped encoder recipe on an EnCodec checkpoint: every SEANet conv in int8, a version 2 file that round-trips.
TEST_F(CliTest, QuantizeEncodecWithEncoderRecipe) {
  const std::string ckpt = fixture("encodec-24k/model.th");
  fs::create_directories(path("calib"));
  fs::copy_file(fixture("encodec-24k/speech.input.wav"), path("calib/a.wav"));
  auto r = run({"quantize", ckpt, "--calib", path("calib"), "--recipe",
                source_dir() + "/configs/quant/w8a8-encoder.yaml", "-o", path("q.wtk")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find(": 36 int8 layers"), std::string::npos)
      << r.err;  // 18 encoder + 14 decoder convs + 4 transposed
  const std::string bytes = slurp(path("q.wtk"));
  ASSERT_GT(bytes.size(), 16u);
  EXPECT_EQ(bytes[8], 2);  // format version 2: int8 required
  ASSERT_EQ(
      run({"roundtrip", fixture("encodec-24k/speech.input.wav"), "-m", path("q.wtk"), "-o", path("y.wav"), "-q"}).code,
      0);
  EXPECT_EQ(read_audio(path("y.wav"), 24000).samples.size(), 96000u);
}

TEST_F(CliTest, InfoAndHelp) {
  auto r = run({"info", kCkpt});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("75.00 frames/s"), std::string::npos) << r.err;
  EXPECT_EQ(run({"encode", "--help"}).code, 0);
  EXPECT_NE(run({}).code, 0);
  EXPECT_NE(run({"frobnicate"}).code, 0);
}

TEST_F(CliTest, BadCheckpoints) {
  write_bytes(path("empty.ckpt"), "");
  write_bytes(path("junk.ckpt"), std::string(5000, 'x'));
  const std::string full = slurp(kCkpt);
  write_bytes(path("trunc.ckpt"), full.substr(0, full.size() / 2));
  for (const auto& [file, needle] :
       std::vector<std::pair<std::string, std::string>>{{path("missing.ckpt"), "not found"},
                                                        {path("empty.ckpt"), "empty.ckpt"},
                                                        {path("junk.ckpt"), "junk.ckpt"},
                                                        {path("trunc.ckpt"), "trunc.ckpt"}}) {
    auto r = run({"encode", kWav, "-m", file, "--config", kCfg, "-o", path("out.wtt")});
    EXPECT_EQ(r.code, 1) << file;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(path("out.wtt")));
  }
  expect_only({"empty.ckpt", "junk.ckpt", "trunc.ckpt"});
}

TEST_F(CliTest, ConfigContradictingTensorShapes) {
  std::string cfg = slurp(kCfg);
  const auto at = cfg.find("vq_bins: 512");
  ASSERT_NE(at, std::string::npos);
  cfg.replace(at, 12, "vq_bins: 1024");
  write_bytes(path("config.yaml"), cfg);
  auto r = run({"encode", kWav, "-m", kCkpt, "--config", path("config.yaml"), "-o", path("out.wtt")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("1024"), std::string::npos) << r.err;
  std::string cfg2 = slurp(kCfg);
  cfg2.replace(cfg2.find("dim: 128"), 8, "dim: 256");
  write_bytes(path("config2.yaml"), cfg2);
  r = run({"encode", kWav, "-m", kCkpt, "--config", path("config2.yaml"), "-o", path("out.wtt")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("shape"), std::string::npos) << r.err;
  expect_only({"config.yaml", "config2.yaml"});
}

TEST_F(CliTest, BadAudio) {
  write_audio(path("empty.wav"), std::vector<float>{}, 24000);
  std::vector<float> nan(24000, 0.1f);
  nan[1234] = std::nanf("");
  {  // write_audio refuses NaN, so write the float WAV with libsndfile directly
    SF_INFO info{};
    info.samplerate = 24000;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE* f = sf_open(path("nan.wav").c_str(), SFM_WRITE, &info);
    ASSERT_NE(f, nullptr);
    sf_write_float(f, nan.data(), sf_count_t(nan.size()));
    sf_close(f);
  }
  write_bytes(path("text.wav"), "this is not audio at all\n");
  for (const auto& [file, needle] : std::vector<std::pair<std::string, std::string>>{{path("empty.wav"), "empty.wav"},
                                                                                     {path("nan.wav"), "NaN"},
                                                                                     {path("text.wav"), "text.wav"},
                                                                                     {path("none.wav"), "none.wav"}}) {
    auto r = run({"encode", file, "-m", kCkpt, "-o", path("out.wtt")});
    EXPECT_EQ(r.code, 1) << file;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(path("out.wtt")));
  // Silence is valid audio: it encodes, and decodes to finite samples.
  write_audio(path("silent.wav"), std::vector<float>(48000, 0.0f), 24000);
  ASSERT_EQ(run({"roundtrip", path("silent.wav"), "-m", kCkpt, "-o", path("silent_out.wav"), "-q"}).code, 0);
  for (float v : read_audio(path("silent_out.wav"), 24000).samples) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(CliTest, BadTokenFiles) {
  ASSERT_EQ(run({"encode", kWav, "-m", kCkpt, "-o", path("t.wtt"), "-q"}).code, 0);
  const std::string good = slurp(path("t.wtt"));
  write_bytes(path("trunc.wtt"), good.substr(0, good.size() - 10));
  std::string other = good;
  other[16] ^= 0x5a;  // fingerprint of another model
  write_bytes(path("other.wtt"), other);
  for (const auto& [file, needle] : std::vector<std::pair<std::string, std::string>>{
           {path("trunc.wtt"), "truncated"}, {path("other.wtt"), "different model"}}) {
    auto r = run({"decode", file, "-m", kCkpt, "-o", path("y.wav")});
    EXPECT_EQ(r.code, 1) << file;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(path("y.wav")));
  }
}

TEST_F(CliTest, OutputEqualToInputIsRefused) {
  fs::copy_file(kWav, path("in.wav"));
  const std::string before = slurp(path("in.wav"));
  auto r = run({"roundtrip", path("in.wav"), "-m", kCkpt, "-o", path("in.wav")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("same file"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(path("in.wav")), before);
  r = run({"roundtrip", path("in.wav"), "-m", kCkpt, "-o", path("no/such/dir/out.wav")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

// Causal models from the command line (docs/STREAMING.md "Causal models"): `info` prints the closed-form streaming
// latency, `bench --streaming realtime` measures it live (the first code and the first audio both leave with the
// first 20 ms chunk), the realtime preset is refused for a model that looks ahead, and `-m rt` names the shipped
// causal model, or says that it is not trained yet.
TEST_F(CliTest, CausalModelInfoBenchAndRealtimeRefusal) {
  ASSERT_EQ(std::system(("/usr/bin/python3 " + source_dir() +
                         "/python/make_reference_fixtures.py --config 75c --quiet --out " + path("c75"))
                            .c_str()),
            0);
  const std::string causal = path("c75/model.ckpt");
  auto info = run({"info", "-m", causal});
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.err.find("algorithmic latency 480 samples = 20.0 ms"), std::string::npos) << info.err;
  auto plain = run({"info", kCkpt});
  EXPECT_NE(plain.err.find("windowed decoder"), std::string::npos) << plain.err;
  auto b = run({"bench", "-m", causal, "--seconds", "0.5", "--repeats", "1", "--phases", "decode", "--streaming",
                "realtime", "--stream-seconds", "1", "--no-memory", "-t", "1", "--json-out", path("b.json"), "-q"});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.err.find("realtime algorithmic latency 20.0 ms"), std::string::npos) << b.err;
  YAML::Node s = YAML::LoadFile(path("b.json"))["streaming"][0];
  EXPECT_DOUBLE_EQ(s["latency_ms"].as<double>(), 20.0);
  EXPECT_DOUBLE_EQ(s["first_token_audio_ms"].as<double>(), 20.0);  // frame 0 is final after 320 of the 480 samples
  EXPECT_DOUBLE_EQ(s["first_audio_audio_ms"].as<double>(), 20.0);  // and its first 160 samples of audio with it
  EXPECT_GT(s["live_push_cpu_ms"][1].as<double>(), 0.0);
  auto refused = run({"bench", "-m", kCkpt, "--streaming", "realtime", "--seconds", "0.5", "--no-memory", "-q"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("needs a causal model"), std::string::npos) << refused.err;
  auto enc = run({"stream-encode", kWav, "-m", kCkpt, "--preset", "realtime", "-o", path("r.wtt"), "-q"});
  EXPECT_EQ(enc.code, 1);
  EXPECT_NE(enc.err.find("needs a causal model"), std::string::npos) << enc.err;
  auto rt = run({"info", "-m", "rt"});
  if (has_embedded_model("rt") || fs::exists(source_dir() + "/codec/rt/wavtok-rt.wtk")) {
    EXPECT_EQ(rt.code, 0) << rt.err;
    EXPECT_NE(rt.err.find("algorithmic latency"), std::string::npos) << rt.err;
    // bench takes the shipped name too
    auto brt = run({"bench", "-m", "rt", "--seconds", "0.5", "--repeats", "1", "--phases", "decode", "--streaming",
                    "realtime", "--stream-seconds", "1", "--no-memory", "-t", "1", "-q"});
    EXPECT_EQ(brt.code, 0) << brt.err;
    EXPECT_NE(brt.err.find("realtime algorithmic latency 20.0 ms"), std::string::npos) << brt.err;
  } else {
    EXPECT_EQ(rt.code, 1);
    EXPECT_NE(rt.err.find("'rt' model (causal, for --preset realtime) is not trained yet"), std::string::npos)
        << rt.err;
  }
  expect_only({"c75", "b.json"});
}

}  // namespace
}  // namespace wavtok
