// The batch thread pool (codec/batch.h: run_batch) on 4 threads sharing one model gives the token files and manifest
// records of a serial run (named *Concurrent* so that scripts/sanitize.sh runs it under ThreadSanitizer).
#include "codec/batch.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>

#include <gtest/gtest.h>

#include "codec/default_model.h"
#include "dsp/audio_io.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<std::string> sorted_lines(const fs::path& p) {
  std::vector<std::string> v;
  std::ifstream f(p);
  for (std::string l; std::getline(f, l);) v.push_back(l);
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Batch, ConcurrentJobsMatchSerial) {
  ASSERT_TRUE(has_embedded_default_model());
  const auto model = load_embedded_default_model();
  const fs::path dir = testing::scratch_dir("batch_concurrent");
  std::vector<std::string> inputs;
  for (int i = 0; i < 8; ++i) {
    std::vector<float> x(size_t(4000 + 1500 * i));
    for (size_t t = 0; t < x.size(); ++t) x[t] = float(0.3 * std::sin(0.02 * (i + 1) * double(t)));
    inputs.push_back((dir / "in" / ("c" + std::to_string(i) + ".wav")).string());
    fs::create_directories(dir / "in");
    write_audio(inputs.back(), x, i % 2 ? 16000 : 24000);
  }
  std::ofstream(dir / "in" / "bad.wav") << "not audio";
  inputs.push_back((dir / "in" / "bad.wav").string());
  const auto jobs = batch::collect_jobs({(dir / "in").string()});
  ASSERT_EQ(jobs.size(), 9u);

  batch::RunOptions serial;
  const auto s1 = batch::run_batch(model, jobs, (dir / "serial").string(), serial);
  batch::RunOptions pool;
  pool.jobs = 4;
  std::mutex mu;
  size_t calls = 0;
  const auto s4 =
      batch::run_batch(model, jobs, (dir / "pool").string(), pool, [&](const batch::Progress& p, const batch::Record*) {
        std::lock_guard<std::mutex> lk(mu);  // serialised by run_batch; checked here
        ++calls;
        EXPECT_LE(p.done, p.total);
      });
  EXPECT_EQ(calls, 10u);  // once at the start, once per file
  EXPECT_EQ(s1.ok, 8u);
  EXPECT_EQ(s4.ok, 8u);
  EXPECT_EQ(s4.failed, 1u);
  EXPECT_NEAR(s4.audio_s, s1.audio_s, 1e-9);
  for (const auto& j : jobs)
    if (j.input != inputs.back())
      EXPECT_EQ(slurp(dir / "pool" / j.output), slurp(dir / "serial" / j.output)) << j.input;
  EXPECT_EQ(sorted_lines(dir / "pool" / "manifest.jsonl"), sorted_lines(dir / "serial" / "manifest.jsonl"));
}

}  // namespace
}  // namespace wavtok
