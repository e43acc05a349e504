// `wavtok batch` and the library under it (codec/batch.h) on a small generated corpus: good clips of several
// formats, rates and channel counts, plus bad files. The truths: the single-file `wavtok encode` of the same input
// (byte-identical token files), SHA-256 test vectors (FIPS 180-2), and a clean uninterrupted run (byte-identical
// outputs and the same manifest records after a SIGKILL and a restart).
#include "codec/batch.h"

#include <signal.h>
#include <sndfile.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "apps/cli_test_util.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/token_file.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;
using namespace wavtok::testing;

const std::string kBin = std::string(WAVTOK_BINARY_DIR) + "/wavtok";

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void put(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

void write_sf(const fs::path& p, int format, int rate, int channels, const std::vector<float>& interleaved) {
  fs::create_directories(p.parent_path());
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr) << p << ": " << sf_strerror(nullptr);
  const sf_count_t frames = sf_count_t(interleaved.size()) / channels;
  ASSERT_EQ(sf_writef_float(f, interleaved.data(), frames), frames);
  sf_close(f);
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> v;
  std::ifstream f(p);
  for (std::string l; std::getline(f, l);)
    if (!l.empty()) v.push_back(l);
  return v;
}

// The corpus: 40 short clips (sine + noise; 16/24/44.1 kHz; mono/stereo; WAV 16-bit, float WAV, FLAC) in nested
// folders, one truncated WAV (tokenized with a warning, refused under --strict), and four bad files.
struct Corpus {
  fs::path dir;
  std::set<std::string> good, bad;  // inputs as the folder walk names them
  std::string truncated;
};

Corpus make_corpus(const fs::path& dir) {
  Corpus c;
  c.dir = dir;
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.f, 0.05f);
  const int rates[] = {16000, 24000, 44100};
  for (int i = 0; i < 40; ++i) {
    const int rate = rates[i % 3], ch = 1 + (i % 4 == 3);
    const int64_t n = rate * (20 + (i * 7) % 30) / 100;  // 0.20 .. 0.49 s
    std::vector<float> x(size_t(n) * ch);
    const double f0 = 110.0 * (1 + i % 7);
    for (int64_t t = 0; t < n; ++t)
      for (int k = 0; k < ch; ++k)
        x[size_t(t) * ch + k] = float(0.3 * std::sin(2 * M_PI * f0 * (k + 1) * t / rate)) + noise(rng);
    const fs::path sub = dir / ("spk" + std::to_string(i % 5)) / (i % 2 ? "a" : "b");
    fs::path p;
    if (i % 3 == 0) {
      p = sub / ("clip" + std::to_string(i) + ".flac");
      write_sf(p, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, rate, ch, x);
    } else {
      p = sub / ("clip" + std::to_string(i) + ".wav");
      write_sf(p, SF_FORMAT_WAV | (i % 3 == 1 ? SF_FORMAT_PCM_16 : SF_FORMAT_FLOAT), rate, ch, x);
    }
    c.good.insert(p.string());
  }
  // Cut short: the header promises 12000 samples, the file holds 7000.
  {
    const fs::path p = dir / "spk0" / "cut.wav";
    std::vector<float> x(12000);
    for (size_t t = 0; t < x.size(); ++t) x[t] = float(0.3 * std::sin(0.05 * double(t)));
    write_sf(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 24000, 1, x);
    fs::resize_file(p, fs::file_size(p) - 5000 * 2);
    c.truncated = p.string();
    c.good.insert(p.string());
  }
  // Bad: a corrupt header, an empty file, a float WAV holding a NaN, text named like audio.
  {
    std::string wav = "RIFF\x24\x00\x00\x00WAVEfmt ";
    wav += std::string(20, '\xff');
    put(dir / "bad" / "corrupt_header.wav", wav);
    put(dir / "bad" / "empty.wav", "");
    std::vector<float> x(4000, 0.1f);
    x[1234] = std::nanf("");
    write_sf(dir / "bad" / "nan.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, x);
    put(dir / "bad" / "notes.flac", "these are not the samples you are looking for\n");
    for (const char* n : {"corrupt_header.wav", "empty.wav", "nan.wav", "notes.flac"})
      c.bad.insert((dir / "bad" / n).string());
  }
  put(dir / "README.txt", "not an audio extension: a folder walk skips it\n");
  return c;
}

std::map<std::string, batch::Record> records_by_input(const fs::path& outdir) {
  std::map<std::string, batch::Record> m;
  for (const auto& l : lines_of(outdir / "manifest.jsonl")) {
    const batch::Record r = batch::parse_record(l);
    EXPECT_EQ(m.count(r.input), 0u) << "input recorded twice (redone): " << r.input;
    m[r.input] = r;
  }
  return m;
}

// Every regular file below dir (relative path -> bytes), leaving out the lock file and the manifest (whose lines
// come in completion order; compared sorted).
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> t;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != ".wavtok-batch.lock" && e.path().filename() != "manifest.jsonl")
      t[e.path().lexically_relative(dir).string()] = slurp(e.path());
  return t;
}

class BatchTest : public ::testing::Test {
 protected:
  // One corpus and one clean run, shared by the tests of this suite.
  // CTest runs each test in its own process, several at once: one folder per process.
  static void SetUpTestSuite() {
    root_ = scratch_dir("batch_suite_" + std::to_string(::getpid()));
    corpus_ = make_corpus(fs::path(root_) / "corpus");
    clean_ = fs::path(root_) / "clean";
    clean_result_ = run_cli({"batch", corpus_.dir.string(), "-o", clean_.string(), "-j", "2", "-t", "1"});
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string root_;
  static Corpus corpus_;
  static fs::path clean_;
  static CliResult clean_result_;
};
std::string BatchTest::root_;
Corpus BatchTest::corpus_;
fs::path BatchTest::clean_;
CliResult BatchTest::clean_result_;

TEST(BatchLib, Sha256MatchesTheFipsVectors) {
  const std::string dir = scratch_dir("batch_sha");
  put(fs::path(dir) / "abc", "abc");
  put(fs::path(dir) / "empty", "");
  put(fs::path(dir) / "two", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(batch::sha256_file(dir + "/abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(batch::sha256_file(dir + "/empty"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(batch::sha256_file(dir + "/two"), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a' (FIPS 180-2, appendix B.3): crosses the 64 KiB read blocks.
  put(fs::path(dir) / "million", std::string(1000000, 'a'));
  EXPECT_EQ(batch::sha256_file(dir + "/million"), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_THROW(batch::sha256_file(dir + "/missing"), Error);
}

TEST(BatchLib, RecordsRoundTripThroughJsonAndHalfLinesAreRefused) {
  batch::Record r;
  r.input = "dir with space/qu\"ote\\back\tslash\n\x01.wav";
  r.output = "x.wav.wtt";
  r.ok = false;
  r.error = "bad: \"thing\"";
  r.sha256 = std::string(64, 'a');
  r.bytes = 123456789012;
  r.sample_rate = 44100;
  r.samples = 1000;
  r.samples_promised = 2000;
  r.duration_s = 1000.0 / 44100;
  r.frames = 3;
  r.n_q = 8;
  r.fingerprint = 0xfedcba9876543210ull;
  const std::string line = batch::to_json(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const batch::Record b = batch::parse_record(line);
  EXPECT_EQ(b.input, r.input);
  EXPECT_EQ(b.error, r.error);
  EXPECT_EQ(b.ok, false);
  EXPECT_EQ(b.bytes, r.bytes);
  EXPECT_EQ(b.samples_promised, 2000);
  EXPECT_TRUE(b.truncated());
  EXPECT_EQ(b.fingerprint, r.fingerprint);
  EXPECT_NEAR(b.duration_s, r.duration_s, 1e-6);
  EXPECT_EQ(batch::to_json(b), line);
  EXPECT_THROW(batch::parse_record(line.substr(0, line.size() / 2)), Error);
  EXPECT_THROW(batch::parse_record(""), Error);
  EXPECT_THROW(batch::parse_record("{\"input\":\"x\"}"), Error);
}

TEST(BatchLib, CollectJobsMirrorsPathsAndRefusesCollisions) {
  const fs::path dir = scratch_dir("batch_collect");
  put(dir / "c" / "x" / "a.wav", "1");
  put(dir / "c" / "x" / "a.flac", "2");
  put(dir / "c" / "b.OGG", "3");
  put(dir / "c" / "skip.txt", "4");
  put(dir / "list.txt", "# a comment\n\n" + (dir / "c" / "skip.txt").string() + "\n");
  const auto jobs = batch::collect_jobs({(dir / "c").string(), "@" + (dir / "list.txt").string()});
  std::vector<std::string> outs;
  for (const auto& j : jobs) outs.push_back(j.output);
  const std::string listed = fs::path((dir / "c" / "skip.txt").string()).relative_path().string() + ".wtt";
  std::vector<std::string> want{"b.OGG.wtt", listed, "x/a.flac.wtt", "x/a.wav.wtt"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(outs, want);
  // The same file twice is one job; a missing input or list is an error.
  EXPECT_EQ(batch::collect_jobs({(dir / "c").string(), (dir / "c").string()}).size(), 3u);
  EXPECT_THROW(batch::collect_jobs({(dir / "nope").string()}), Error);
  EXPECT_THROW(batch::collect_jobs({}, {(dir / "nolist.txt").string()}), Error);
  // Two folders holding the same relative name would write one output: refused, naming both.
  put(dir / "d" / "x" / "a.wav", "5");
  try {
    batch::collect_jobs({(dir / "c").string(), (dir / "d").string()});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x/a.wav.wtt"), std::string::npos) << e.what();
  }
}

TEST_F(BatchTest, BadFilesAreListedAndTheRunCompletes) {
  ASSERT_EQ(clean_result_.code, 3) << clean_result_.err;  // completed, with failures
  EXPECT_NE(clean_result_.err.find("files: 41 ok, 4 failed, 0 skipped"), std::string::npos) << clean_result_.err;
  EXPECT_NE(clean_result_.err.find("audio hours per hour"), std::string::npos);
  // The truncated file is tokenized with a warning naming both sample counts.
  EXPECT_NE(clean_result_.err.find("warning: " + corpus_.truncated + ": truncated"), std::string::npos)
      << clean_result_.err;
  EXPECT_NE(clean_result_.err.find("12000"), std::string::npos);
  EXPECT_NE(clean_result_.err.find("7000"), std::string::npos);

  const auto recs = records_by_input(clean_);
  ASSERT_EQ(recs.size(), corpus_.good.size() + corpus_.bad.size());  // README.txt is not audio: not taken
  std::set<std::string> failed;
  for (const auto& [in, r] : recs) {
    EXPECT_EQ(r.ok, corpus_.good.count(in) == 1) << in << ": " << r.error;
    if (!r.ok) {
      failed.insert(in);
      EXPECT_NE(r.error.find(in), std::string::npos) << "error does not name the file: " << r.error;
      EXPECT_FALSE(fs::exists(clean_ / r.output)) << r.output;
    }
  }
  EXPECT_EQ(failed, corpus_.bad);
  EXPECT_NE(recs.at(corpus_.dir.string() + "/bad/nan.wav").error.find("NaN"), std::string::npos);
  // failures.tsv lists exactly the bad files.
  std::set<std::string> listed;
  for (const auto& l : lines_of(clean_ / "failures.tsv")) listed.insert(l.substr(0, l.find('\t')));
  EXPECT_EQ(listed, corpus_.bad);
  const auto& cut = recs.at(corpus_.truncated);
  EXPECT_TRUE(cut.truncated());
  EXPECT_EQ(cut.samples, 7000);
  EXPECT_EQ(cut.samples_promised, 12000);
  // Each good record: sha256 of the input, duration from the file, a token file with its frames.
  for (const auto& in : corpus_.good) {
    const auto& r = recs.at(in);
    EXPECT_EQ(r.sha256, batch::sha256_file(in));
    EXPECT_EQ(r.bytes, int64_t(fs::file_size(in)));
    const Audio a = read_audio(in, 0);
    EXPECT_EQ(r.sample_rate, a.sample_rate);
    EXPECT_NEAR(r.duration_s, double(a.samples.size()) / a.sample_rate, 1e-6);
    const TokenFile tf = read_tokens((clean_ / r.output).string());
    EXPECT_EQ(tf.tokens.frames, r.frames);
    EXPECT_EQ(tf.fingerprint, r.fingerprint);
    EXPECT_EQ(tf.tokens.n_q, r.n_q);
  }
}

TEST_F(BatchTest, OutputsEqualSingleFileEncode) {
  ASSERT_EQ(clean_result_.code, 3) << clean_result_.err;
  const fs::path dir = scratch_dir("batch_vs_encode");
  int compared = 0;
  for (const auto& in : corpus_.good) {
    if (compared == 4 && in != corpus_.truncated) continue;  // four clips and the truncated file
    const auto rel = fs::path(in).lexically_relative(corpus_.dir);
    const std::string out = (dir / "one.wtt").string();
    const auto r = run_cli({"encode", in, "-o", out, "-q"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(slurp(out), slurp(clean_ / (rel.string() + ".wtt"))) << in;
    compared += in != corpus_.truncated;
  }
}

TEST_F(BatchTest, StrictRefusesTheTruncatedFile) {
  const fs::path out = scratch_dir("batch_strict");
  const auto r = run_cli({"batch", corpus_.truncated, "-o", out.string(), "--strict", "-q"});
  EXPECT_EQ(r.code, 3) << r.err;
  const auto recs = records_by_input(out);
  ASSERT_EQ(recs.size(), 1u);
  const auto& rec = recs.begin()->second;
  EXPECT_FALSE(rec.ok);
  EXPECT_NE(rec.error.find("12000"), std::string::npos) << rec.error;
  EXPECT_NE(rec.error.find("7000"), std::string::npos) << rec.error;
}

// The single-file commands: a warning naming both sample counts, and --strict refuses with no output left.
TEST_F(BatchTest, EncodeRoundtripAndStreamEncodeWarnOrRefuseTruncatedAudio) {
  const fs::path dir = scratch_dir("batch_single_truncated");
  auto r = run_cli({"encode", corpus_.truncated, "-o", (dir / "t.wtt").string(), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: " + corpus_.truncated +
                       ": truncated: the header promises 12000 samples (per "
                       "channel), the file holds 7000"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(fs::exists(dir / "t.wtt"));
  for (const std::string cmd : {"encode", "roundtrip", "stream-encode"}) {
    const std::string out = (dir / (cmd + (cmd == "roundtrip" ? ".wav" : ".wtt"))).string();
    r = run_cli({cmd, corpus_.truncated, "-o", out, "--strict", "-q"});
    EXPECT_EQ(r.code, 1) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("12000"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("7000"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << cmd;
  }
  // A complete file passes --strict.
  r = run_cli({"encode", *corpus_.good.begin(), "-o", (dir / "ok.wtt").string(), "--strict", "-q"});
  EXPECT_EQ(r.code, 0) << r.err;
}

// SIGKILL mid-run, then restart: nothing finished is redone (each input recorded once), nothing is lost (every
// output of a clean run is there, byte for byte, and the manifests hold the same records).
TEST_F(BatchTest, KilledAndRestartedRedoesNothingAndLosesNothing) {
  ASSERT_EQ(clean_result_.code, 3) << clean_result_.err;
  const fs::path out = scratch_dir("batch_killed");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(kBin.c_str(), kBin.c_str(), "batch", corpus_.dir.c_str(), "-o", out.c_str(), "-j", "1", "-t", "1", "-q",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const size_t kill_after = 12;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  size_t seen = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    seen = lines_of(out / "manifest.jsonl").size();
    if (seen >= kill_after) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child finished before it was killed (status " << status << ")";
  const size_t before = lines_of(out / "manifest.jsonl").size();
  ASSERT_GE(before, kill_after);
  ASSERT_LT(before, corpus_.good.size() + corpus_.bad.size()) << "killed too late to test a resume";

  const auto r = run_cli({"batch", corpus_.dir.string(), "-o", out.string(), "-j", "2", "-t", "1"});
  ASSERT_EQ(r.code, 3) << r.err;
  // Skipped = every record written before the kill (done and failed alike); the rest encoded now.
  const size_t total = corpus_.good.size() + corpus_.bad.size();
  EXPECT_NE(r.err.find(" skipped ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::to_string(before) + " skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("of " + std::to_string(total)), std::string::npos) << r.err;
  const auto recs = records_by_input(out);  // fails on any input recorded twice
  EXPECT_EQ(recs.size(), total);
  EXPECT_EQ(lines_of(out / "manifest.jsonl").size(), total);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(lines_of(out / "manifest.jsonl")), sorted(lines_of(clean_ / "manifest.jsonl")));
  EXPECT_EQ(tree(out), tree(clean_));  // token files and failures.tsv, byte for byte; no temporaries left
}

TEST_F(BatchTest, ResumeRedoesAChangedInputOnly) {
  const fs::path dir = scratch_dir("batch_changed");
  const fs::path in = dir / "in", out = dir / "out";
  fs::create_directories(in);
  std::vector<fs::path> files;
  for (const auto& g : corpus_.good) {
    if (files.size() == 3) break;
    files.push_back(in / ("c" + std::to_string(files.size()) + ".audio"));
    fs::copy_file(g, files.back());
  }
  auto r = run_cli({"batch", files[0].string(), files[1].string(), files[2].string(), "-o", out.string(), "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(out / "manifest.jsonl").size(), 3u);
  // Unchanged: all skipped, nothing appended.
  r = run_cli({"batch", files[0].string(), files[1].string(), files[2].string(), "-o", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("files: 0 ok, 0 failed, 3 skipped"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(out / "manifest.jsonl").size(), 3u);
  // One input's bytes change (another clip copied over it): that one alone is redone, and its output follows.
  fs::copy_file(files[0], files[1], fs::copy_options::overwrite_existing);
  r = run_cli({"batch", files[0].string(), files[1].string(), files[2].string(), "-o", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("files: 1 ok, 0 failed, 2 skipped"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(out / "manifest.jsonl").size(), 4u);
  const batch::Manifest m = batch::Manifest::load(out.string());
  EXPECT_EQ(m.find(files[1].string())->sha256, batch::sha256_file(files[0].string()));
  const auto rel = [](const fs::path& p) { return fs::path(p.string()).relative_path().string() + ".wtt"; };
  EXPECT_EQ(slurp(out / rel(files[1])), slurp(out / rel(files[0])));
}

TEST_F(BatchTest, SecondWriterIsRefusedWhileTheFirstHoldsTheFolder) {
  const fs::path out = scratch_dir("batch_lock");
  batch::ManifestWriter first(out.string());
  EXPECT_THROW(batch::ManifestWriter second(out.string()), Error);
}

}  // namespace
}  // namespace wavtok
