#include "io/torch_checkpoint.h"

#include <gtest/gtest.h>
#include <zip.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "core/error.h"
#include "io/npy.h"
#include "io/torch_pickle.h"
#include "io/torch_test_samples.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;
using testing::fixture;
using testing::scratch_dir;
using testing::split_tabs;
using testing::torch_samples;

// ---- helpers ----

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Expects load_torch_checkpoint to throw wavtok::Error whose message names the file and contains `what`.
void expect_load_error(const std::string& path, const std::string& what, const CheckpointLimits& lim = {}) {
  try {
    load_torch_checkpoint(path, lim);
    ADD_FAILURE() << path << ": loaded, expected an error containing '" << what << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "message lacks '" << what << "': " << msg;
  }
}

void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr);
  for (const auto& [name, data] : entries) {
    zip_source_t* s = zip_source_buffer(z, data.data(), data.size(), 0);
    ASSERT_NE(s, nullptr);
    const zip_int64_t idx = zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE);
    ASSERT_GE(idx, 0);
    ASSERT_EQ(zip_set_file_compression(z, zip_uint64_t(idx), ZIP_CM_STORE, 0), 0);  // as torch.save does
  }
  ASSERT_EQ(zip_close(z), 0);
}

// A tiny pickle assembler for hand-crafted (and hostile) inputs.
struct Pickle {
  std::string b = "\x80\x02";
  Pickle& op(const std::string& s) {
    b += s;
    return *this;
  }
  Pickle& str(const std::string& s) {
    b += 'X';
    le(uint32_t(s.size()), 4);
    b += s;
    return *this;
  }
  Pickle& i32(int32_t v) {
    b += 'J';
    le(uint32_t(v), 4);
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) { return op("c" + module + "\n" + name + "\n"); }
  Pickle& ints(const std::vector<int32_t>& v) {
    op("(");
    for (int32_t x : v) i32(x);
    return op("t");
  }
  // {name: tensor} built the way torch.save writes it.
  Pickle& tensor(const std::string& key, int32_t numel, int32_t offset, const std::vector<int32_t>& size,
                 const std::vector<int32_t>& stride, const std::string& storage_type = "FloatStorage") {
    global("torch._utils", "_rebuild_tensor_v2").op("((").str("storage").global("torch", storage_type);
    str(key).str("cpu").i32(numel).op("tQ");
    i32(offset).ints(size).ints(stride).op("\x89").global("collections", "OrderedDict").op(")Rt");
    return op("R");
  }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b += char((v >> (8 * i)) & 0xff);
  }
};

std::string floats_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

std::string pickle_with_tensor(int32_t numel, int32_t offset, const std::vector<int32_t>& size,
                               const std::vector<int32_t>& stride) {
  Pickle p;
  p.op("}").str("t").tensor("0", numel, offset, size, stride).op("s.");
  return p.b;
}

std::vector<int64_t> parse_shape(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string tok;
  while (std::getline(in, tok, ',')) out.push_back(std::stoll(tok));
  return out;
}

bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;  // distinguishes -0 from +0
}

// ---- torch-made samples against NumPy copies written by the same Python process ----

struct Expected {
  std::map<std::string, std::vector<std::string>> tensors;  // name -> T record
  std::map<std::string, std::string> scalars;
  std::set<std::string> state_dict;
};

std::map<std::string, Expected> read_manifest(const std::string& dir) {
  std::map<std::string, Expected> out;
  std::ifstream in(dir + "/manifest.tsv");
  std::string line;
  auto resolve = [&](const std::string& p) { return p.empty() || p[0] == '/' || p == "-" ? p : dir + "/" + p; };
  while (std::getline(in, line)) {
    auto f = split_tabs(line);
    if (f.size() < 3) continue;
    Expected& e = out[resolve(f[1])];
    if (f[0] == "T" && f.size() == 8) {
      for (size_t i = 5; i < 8; ++i) f[i] = resolve(f[i]);
      e.tensors[f[2]] = f;
    } else if (f[0] == "S") {
      e.scalars[f[2]] = f.size() > 3 ? f[3] : "";
    } else if (f[0] == "D") {
      e.state_dict.insert(f[2]);
    }
  }
  return out;
}

void compare_checkpoint(const std::string& path, const Expected& want) {
  SCOPED_TRACE(path);
  TorchCheckpoint ck;
  ASSERT_NO_THROW(ck = load_torch_checkpoint(path));

  std::set<std::string> got_names, want_names;
  for (const auto& [n, t] : ck.tensors) got_names.insert(n);
  for (const auto& [n, r] : want.tensors) want_names.insert(n);
  EXPECT_EQ(got_names, want_names);

  for (const auto& [name, rec] : want.tensors) {
    SCOPED_TRACE(name);
    auto it = ck.tensors.find(name);
    if (it == ck.tensors.end()) continue;
    const RawTensor& t = it->second;
    EXPECT_EQ(std::string(dtype_name(t.dtype)), rec[3]);
    EXPECT_EQ(t.shape, parse_shape(rec[4]));
    const RawTensor truth = read_npy(rec[5]);
    EXPECT_EQ(truth.shape, t.shape);
    if (truth.dtype == t.dtype) {
      EXPECT_TRUE(truth.bytes == t.bytes) << "bytes differ from torch's";
    } else {  // bfloat16: NumPy holds torch's exact float32 values
      const auto a = t.to_float(), b = truth.to_float();
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_float(a[i], b[i])) << i << ": " << a[i] << " vs " << b[i];
    }
    if (rec[6] != "-") {  // torch's own conversion to float32
      const auto a = t.to_float(), b = read_npy(rec[6]).to_float();
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_float(a[i], b[i])) << i << ": " << a[i] << " vs " << b[i];
    }
    if (rec[7] != "-") {
      EXPECT_EQ(t.to_int64(), read_npy(rec[7]).to_int64());
    }
  }

  EXPECT_EQ(ck.scalars, want.scalars);

  std::set<std::string> sd_names;
  const auto sd = ck.state_dict();
  for (const auto& [n, t] : sd) sd_names.insert(n);
  EXPECT_EQ(sd_names, want.state_dict);

  // take_state_dict hands over the same tensors and removes them from the checkpoint.
  const size_t before = ck.tensors.size();
  const auto taken = ck.take_state_dict();
  ASSERT_EQ(taken.size(), sd.size());
  for (const auto& [n, t] : sd) {
    ASSERT_TRUE(taken.count(n)) << n;
    EXPECT_EQ(taken.at(n).dtype, t.dtype);
    EXPECT_EQ(taken.at(n).shape, t.shape);
    EXPECT_TRUE(taken.at(n).bytes == t.bytes) << n;
  }
  EXPECT_EQ(ck.tensors.size(), before - sd.size());
}

class TorchSamplesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto s = torch_samples();
    ASSERT_TRUE(s.error.empty()) << s.error;
    dir_ = s.dir;
    manifest_ = read_manifest(dir_);
    ASSERT_FALSE(manifest_.empty()) << "empty manifest in " << dir_;
  }
  void check(const std::string& file) {
    const std::string path = file[0] == '/' ? file : dir_ + "/" + file;
    auto it = manifest_.find(path);
    ASSERT_NE(it, manifest_.end()) << path << " not in the manifest";
    ASSERT_FALSE(it->second.tensors.empty());
    compare_checkpoint(path, it->second);
  }
  std::string dir_;
  std::map<std::string, Expected> manifest_;
};

// Every dtype, transposed / permuted / stepped / expanded (stride 0) views, storage offsets, shared storages,
// 0-d and empty tensors, nn.Parameter; under pickle protocols 2, 4 and 5 and with deflated zip entries.
TEST_F(TorchSamplesTest, BasicProtocol2) { check("basic_p2.pt"); }
TEST_F(TorchSamplesTest, BasicProtocol4) { check("basic_p4.pt"); }
TEST_F(TorchSamplesTest, BasicProtocol5) { check("basic_p5.pt"); }
TEST_F(TorchSamplesTest, BasicDeflated) { check("basic_deflate.pt"); }
TEST_F(TorchSamplesTest, NestedContainers) { check("nested.pt"); }
TEST_F(TorchSamplesTest, PlainStateDict) { check("plain_state.pt"); }
// hyper_parameters full of objects the reader cannot know (paths, Namespace, numpy scalars, custom classes).
TEST_F(TorchSamplesTest, LightningLike) { check("lightning.ckpt"); }
TEST_F(TorchSamplesTest, LightningLikeProtocol4) { check("lightning_p4.ckpt"); }
TEST_F(TorchSamplesTest, WavTokenizerFixtureMatchesTorchLoad) {
  check(fs::absolute(fixture("wavtokenizer-75/model.ckpt")).lexically_normal().string());
}
TEST_F(TorchSamplesTest, EncodecFixtureMatchesTorchLoad) {
  check(fs::absolute(fixture("encodec-24k/model.th")).lexically_normal().string());
}

TEST_F(TorchSamplesTest, SharedStorageViewsSeeTheSameData) {
  // shared_b is elements 6..17 of the storage that shared_a views as 4x6.
  const TorchCheckpoint ck = load_torch_checkpoint(dir_ + "/basic_p2.pt");
  const auto a = ck.tensors.at("shared_a").to_float(), b = ck.tensors.at("shared_b").to_float();
  ASSERT_EQ(a.size(), 24u);
  ASSERT_EQ(b.size(), 12u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], a[6 + i]);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], float(i));  // torch.arange(24)
}

TEST_F(TorchSamplesTest, LegacyFormatIsRefused) { expect_load_error(dir_ + "/legacy.pt", "zip"); }

TEST_F(TorchSamplesTest, TruncatedCheckpointsThrow) {
  const std::string good = slurp(dir_ + "/basic_p2.pt");
  ASSERT_GT(good.size(), 2000u);
  const std::string dir = scratch_dir("torch_truncated");
  for (size_t cut : {size_t(1), size_t(30), size_t(100), size_t(1000), good.size() / 3, good.size() / 2,
                     good.size() - 200, good.size() - 22, good.size() - 1}) {
    const std::string p = dir + "/cut_" + std::to_string(cut) + ".pt";
    spit(p, good.substr(0, cut));
    SCOPED_TRACE(cut);
    EXPECT_THROW(load_torch_checkpoint(p), Error);
  }
}

TEST_F(TorchSamplesTest, LimitsAreEnforced) {
  const std::string p = dir_ + "/lightning.ckpt";
  CheckpointLimits lim;
  lim.max_pickle_bytes = 100;
  expect_load_error(p, "limit", lim);
  lim = {};
  lim.max_tensors = 3;
  expect_load_error(p, "tensors", lim);
  lim = {};
  lim.max_memo_entries = 10;
  expect_load_error(p, "memo", lim);
  lim = {};
  lim.max_nesting_depth = 3;
  expect_load_error(p, "nest", lim);
  lim = {};
  lim.max_tensor_elements = 5;
  expect_load_error(p, "elements", lim);
}

// ---- the reference fixtures ----

TEST(TorchCheckpoint, WavTokenizerLightningCheckpoint) {
  const TorchCheckpoint ck = load_torch_checkpoint(fixture("wavtokenizer-75/model.ckpt"));
  const auto sd = ck.state_dict();
  ASSERT_TRUE(sd.count("backbone.embed.weight"));
  EXPECT_EQ(sd.at("backbone.embed.weight").shape, (std::vector<int64_t>{128, 64, 7}));
  const std::string cb_name = "feature_extractor.encodec.quantizer.vq.layers.0._codebook.embed";
  ASSERT_TRUE(sd.count(cb_name));
  const RawTensor& cb = sd.at(cb_name);
  EXPECT_EQ(cb.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(cb.dtype, DType::F32);

  // Weight norm pairs: every weight_g has its weight_v with the same output dimension.
  int pairs = 0;
  for (const auto& [name, t] : sd) {
    if (!name.ends_with(".weight_g")) continue;
    const std::string v = name.substr(0, name.size() - 1) + "v";
    ASSERT_TRUE(sd.count(v)) << v;
    EXPECT_EQ(t.shape[0], sd.at(v).shape[0]) << name;
    ++pairs;
  }
  EXPECT_GT(pairs, 10);
  for (const auto& [name, t] : sd) EXPECT_FALSE(name.starts_with("state_dict.")) << name;

  ASSERT_TRUE(ck.scalars.count("epoch"));
  ASSERT_TRUE(ck.scalars.count("global_step"));
  EXPECT_GE(std::stoll(ck.scalars.at("global_step")), 0);
  int opt = 0;
  for (const auto& [name, t] : ck.tensors) opt += name.starts_with("optimizer_states.");
  EXPECT_GT(opt, 0);

  // Independent truth: the quantized features upstream produced are codebook rows at the codes.
  const RawTensor features = read_npy(fixture("wavtokenizer-75/speech.features.npy"));
  const RawTensor codes = read_npy(fixture("wavtokenizer-75/speech.codes.npy"));
  ASSERT_EQ(features.shape, (std::vector<int64_t>{1, 64, 300}));
  const auto f = features.to_float();
  const auto c = codes.to_int64();
  const auto e = cb.to_float();
  ASSERT_EQ(c.size(), 300u);
  for (int64_t t = 0; t < 300; ++t) {
    ASSERT_GE(c[t], 0);
    ASSERT_LT(c[t], 512);
    for (int64_t d = 0; d < 64; ++d) ASSERT_EQ(f[d * 300 + t], e[c[t] * 64 + d]) << "frame " << t << " dim " << d;
  }
}

TEST(TorchCheckpoint, EncodecPlainStateDict) {
  const TorchCheckpoint ck = load_torch_checkpoint(fixture("encodec-24k/model.th"));
  const auto sd = ck.state_dict();
  EXPECT_EQ(sd.size(), ck.tensors.size());  // a plain state_dict: everything is at the root
  std::vector<std::vector<float>> books;
  for (int n = 0; n < 32; ++n) {
    const std::string name = "quantizer.vq.layers." + std::to_string(n) + "._codebook.embed";
    ASSERT_TRUE(sd.count(name)) << name;
    EXPECT_EQ(sd.at(name).shape, (std::vector<int64_t>{1024, 32}));
    books.push_back(sd.at(name).to_float());
  }
  EXPECT_FALSE(sd.count("quantizer.vq.layers.32._codebook.embed"));

  // Independent truth: the 24 kbps latent is the running sum of the 32 selected codewords.
  const auto codes = read_npy(fixture("encodec-24k/speech.bw24.codes.npy"));
  ASSERT_EQ(codes.shape, (std::vector<int64_t>{32, 1, 300}));
  const auto c = codes.to_int64();
  const auto lat = read_npy(fixture("encodec-24k/speech.bw24.latents.npy")).to_float();
  double worst = 0;
  for (int64_t t = 0; t < 300; ++t)
    for (int64_t d = 0; d < 32; ++d) {
      float sum = 0;
      for (int n = 0; n < 32; ++n) sum += books[n][c[n * 300 + t] * 32 + d];
      worst = std::max(worst, double(std::abs(sum - lat[d * 300 + t])));
    }
  EXPECT_LE(worst, 1e-5);
}

// ---- corrupt and hostile inputs ----

TEST(TorchCheckpointErrors, MissingEmptyRandomAndDirectory) {
  const std::string dir = scratch_dir("torch_corrupt");
  expect_load_error(dir + "/does_not_exist.ckpt", "no such file");
  spit(dir + "/empty.ckpt", "");
  expect_load_error(dir + "/empty.ckpt", "empty");
  std::mt19937 rng(7);
  std::string junk(4096, '\0');
  for (auto& ch : junk) ch = char(rng());
  spit(dir + "/random.ckpt", junk);
  expect_load_error(dir + "/random.ckpt", "zip");
  expect_load_error(dir, "directory");
}

TEST(TorchCheckpointErrors, ArchiveWithoutPickleOrStorage) {
  const std::string dir = scratch_dir("torch_archive");
  write_zip(dir + "/nopkl.pt", {{"archive/data/0", floats_bytes({1, 2})}, {"archive/version", "3\n"}});
  expect_load_error(dir + "/nopkl.pt", "data.pkl");
  write_zip(dir + "/nostorage.pt", {{"archive/data.pkl", pickle_with_tensor(4, 0, {4}, {1})}});
  expect_load_error(dir + "/nostorage.pt", "archive/data/0");
  write_zip(dir + "/short.pt",
            {{"archive/data.pkl", pickle_with_tensor(4, 0, {4}, {1})}, {"archive/data/0", floats_bytes({1, 2, 3})}});
  expect_load_error(dir + "/short.pt", "holds 12 bytes");
  write_zip(dir + "/bigendian.pt", {{"archive/data.pkl", pickle_with_tensor(4, 0, {4}, {1})},
                                    {"archive/data/0", floats_bytes({1, 2, 3, 4})},
                                    {"archive/byteorder", "big"}});
  expect_load_error(dir + "/bigendian.pt", "big-endian");
}

TEST(TorchCheckpointErrors, CraftedStridedTensorHasClosedFormValues) {
  // Storage 0..5; a 2x2 view at offset 1 with strides (1, 2) is [[1, 3], [2, 4]].
  const std::string dir = scratch_dir("torch_crafted");
  write_zip(dir + "/ok.pt", {{"archive/data.pkl", pickle_with_tensor(6, 1, {2, 2}, {1, 2})},
                             {"archive/data/0", floats_bytes({0, 1, 2, 3, 4, 5})}});
  const TorchCheckpoint ck = load_torch_checkpoint(dir + "/ok.pt");
  ASSERT_EQ(ck.tensors.size(), 1u);
  EXPECT_EQ(ck.tensors.at("t").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ck.tensors.at("t").to_float(), (std::vector<float>{1, 3, 2, 4}));
  EXPECT_EQ(ck.state_dict().size(), 1u);
}

// torch >= 2.1 writes tensors of some dtypes as _rebuild_tensor_v3 over an UntypedStorage (numel in bytes).
std::string pickle_v3(int32_t nbytes, int32_t offset, int32_t size, const std::string& dtype) {
  Pickle p;
  p.op("}").str("h").global("torch._utils", "_rebuild_tensor_v3").op("((").str("storage");
  p.global("torch", "UntypedStorage").str("0").str("cpu").i32(nbytes).op("tQ");
  p.i32(offset).ints({size}).ints({1}).op("\x89").global("collections", "OrderedDict").op(")R");
  p.global("torch", dtype).op("tRs.");
  return p.b;
}

TEST(TorchCheckpointErrors, RebuildTensorV3ViewsUntypedStorage) {
  const std::string dir = scratch_dir("torch_v3");
  const std::string halves("\x00\x3c\x00\xc0\x00\x38", 6);  // float16 1.0, -2.0, 0.5
  write_zip(dir + "/v3.pt", {{"archive/data.pkl", pickle_v3(6, 1, 2, "float16")}, {"archive/data/0", halves}});
  const TorchCheckpoint ck = load_torch_checkpoint(dir + "/v3.pt");
  ASSERT_TRUE(ck.tensors.count("h"));
  EXPECT_EQ(ck.tensors.at("h").dtype, DType::F16);
  EXPECT_EQ(ck.tensors.at("h").to_float(), (std::vector<float>{-2.0f, 0.5f}));
  write_zip(dir + "/v3_oob.pt", {{"archive/data.pkl", pickle_v3(6, 0, 4, "float16")}, {"archive/data/0", halves}});
  expect_load_error(dir + "/v3_oob.pt", "holds only 3");
  // A dtype the engine has no type for (float8) is skipped, not misread.
  write_zip(dir + "/v3_f8.pt", {{"archive/data.pkl", pickle_v3(6, 0, 6, "float8_e4m3fn")}, {"archive/data/0", halves}});
  EXPECT_TRUE(load_torch_checkpoint(dir + "/v3_f8.pt").tensors.empty());
}

TEST(TorchCheckpointErrors, TensorBeyondItsStorage) {
  const std::string dir = scratch_dir("torch_oob");
  const std::string data = floats_bytes({0, 1, 2, 3});
  struct Case {
    int32_t offset;
    std::vector<int32_t> size, stride;
    std::string what;
  };
  const std::vector<Case> cases = {
      {0, {5}, {1}, "reaches element 4"},             // too many elements
      {3, {2}, {1}, "reaches element 4"},             // offset pushes it out
      {0, {2}, {4}, "reaches element 4"},             // stride pushes it out
      {0, {2, 2}, {3, 1}, "reaches element 4"},       // outer stride
      {-1, {2}, {1}, "negative"},                     // negative offset
      {0, {-2}, {1}, "negative"},                     // negative size
      {0, {2}, {-1}, "negative"},                     // negative stride
      {0, {65536, 65536, 4}, {0, 0, 0}, "elements"},  // stride-0 expansion beyond the element limit
      {0, {2, 2}, {1}, "different lengths"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const std::string p = dir + "/case" + std::to_string(i) + ".pt";
    write_zip(p, {{"archive/data.pkl", pickle_with_tensor(4, c.offset, c.size, c.stride)}, {"archive/data/0", data}});
    SCOPED_TRACE(i);
    expect_load_error(p, c.what);
  }
}

class CraftedPickleTest : public ::testing::Test {
 protected:
  // One folder per test: CTest runs the tests of this fixture in parallel processes.
  void SetUp() override {
    dir_ = scratch_dir(std::string("torch_pickles_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  std::string make(const std::string& name, const std::string& pkl) {
    const std::string p = dir_ + "/" + name + ".pt";
    write_zip(p, {{"archive/data.pkl", pkl}, {"archive/version", "3\n"}});
    return p;
  }
  std::string dir_;
};

TEST_F(CraftedPickleTest, AbsurdNestingThroughMarks) {
  Pickle p;
  p.op(std::string(200000, '(') + std::string(200000, 'l') + ".");
  expect_load_error(make("marks", p.b), "nesting deeper than 256");
}

TEST_F(CraftedPickleTest, AbsurdNestingWithoutMarks) {
  // None wrapped in 100000 1-tuples: no MARK involved, so only the walk's depth bound stops it.
  Pickle p;
  p.op("N" + std::string(100000, '\x85') + ".");
  expect_load_error(make("tuples", p.b), "nests deeper");
}

TEST_F(CraftedPickleTest, AbsurdNestingThroughTheMemo) {
  // l0 = []; repeatedly: li = []; l(i-1).append(li) -- each list reached again through the memo.
  Pickle p;
  p.op("]r").le(0, 4);
  for (uint32_t i = 1; i <= 100000; ++i) {
    p.op("]r");
    p.le(i, 4);
    p.op("a0j");
    p.le(i, 4);
  }
  p.op("0j").le(0, 4);
  p.op(".");
  expect_load_error(make("memo", p.b), "nests deeper");
}

TEST_F(CraftedPickleTest, CycleIsBounded) {
  Pickle p;
  p.op(
      "]q\x01h\x01"
      "a.");  // a list containing itself
  expect_load_error(make("cycle", p.b), "nests deeper");
}

TEST_F(CraftedPickleTest, ExponentialSharingIsBounded) {
  // l(i) = [l(i-1), l(i-1)] for 200 levels: 2^200 paths through 201 lists.
  Pickle p;
  p.op("]");
  for (int i = 0; i < 200; ++i)
    p.op(
        "q\x01](h\x01h\x01"
        "e");
  p.op(".");
  expect_load_error(make("sharing", p.b), "too often");
}

TEST_F(CraftedPickleTest, UnknownOpcodeNamesByteAndOffset) {
  Pickle p;
  p.op("}\xff.");
  expect_load_error(make("opcode", p.b), "unsupported pickle opcode 0xff (at byte offset 3)");
  Pickle ext;
  ext.op("\x82\x01.");  // EXT1: extension registry, never used by torch
  expect_load_error(make("ext", ext.b), "opcode 0x82");
}

TEST_F(CraftedPickleTest, MalformedStreams) {
  expect_load_error(make("nostop", Pickle().op("}").b), "truncated pickle");
  expect_load_error(make("underflow", Pickle().op("a.").b), "stack underflow");
  expect_load_error(make("memo_miss", Pickle().op("h\x05.").b), "memo key 5");
  expect_load_error(make("bad_len", Pickle()
                                        .op("X\xff\xff\xff\x7f"
                                            "abc.")
                                        .b),
                    "truncated pickle");
  expect_load_error(make("no_mark", Pickle().op("Nt.").b), "MARK");
  expect_load_error(make("setitem_list", Pickle().op("]NNs.").b), "not a dict");
  expect_load_error(make("proto", std::string("\x80\x09N.")), "protocol 9");
  expect_load_error(make("bad_pid", Pickle().op("NQ.").b), "persistent id");
  expect_load_error(make("empty_pkl", ""), "truncated pickle");
}

TEST_F(CraftedPickleTest, UnknownClassesAreOpaque) {
  // {'a': some.module.Thing(1) with state, 'b': 2.5, 'c': a dict subclass made by NEWOBJ and filled by SETITEMS}
  Pickle q;
  q.op("}(").str("a").global("some.module", "Thing").op("(").i32(1).op("tR");
  q.op("}b");                                              // BUILD with an (ignored) state dict
  q.str("b").op(std::string("G\x40\x04\0\0\0\0\0\0", 9));  // BINFLOAT 2.5, big-endian
  q.str("c").global("pkg", "AttrDict").op(")\x81(").str("k").i32(-3).op("u");
  q.op("u.");
  const TorchCheckpoint ck = load_torch_checkpoint(make("opaque", q.b));
  EXPECT_TRUE(ck.tensors.empty());
  EXPECT_EQ(ck.scalars, (std::map<std::string, std::string>{{"b", "2.5"}, {"c.k", "-3"}}));
}

TEST(TorchPickle, PythonFloatRepr) {
  // Expected strings are Python's repr() of the same doubles.
  using torch_pickle::python_float_repr;
  EXPECT_EQ(python_float_repr(0.0002), "0.0002");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(3.0), "3.0");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(123456789012345.6), "123456789012345.6");
  EXPECT_EQ(python_float_repr(1.2345678901234568e+17), "1.2345678901234568e+17");
  EXPECT_EQ(python_float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(python_float_repr(1.5e300), "1.5e+300");
  EXPECT_EQ(python_float_repr(5e-324), "5e-324");
  EXPECT_EQ(python_float_repr(-INFINITY), "-inf");
}

}  // namespace
}  // namespace wavtok
