#include "io/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/torch_test_samples.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;
using testing::scratch_dir;
using testing::torch_samples;

// The closed form python/tests/make_torch_samples.py uses: element k of a (2, 3, 4) array.
struct Case {
  const char* file;  // as NumPy's descr without the byte-order mark
  DType dtype;
};
constexpr Case kCases[] = {{"f4", DType::F32}, {"f8", DType::F64}, {"f2", DType::F16},
                           {"i8", DType::I64}, {"i4", DType::I32}, {"i2", DType::I16},
                           {"i1", DType::I8},  {"u1", DType::U8},  {"b1", DType::Bool}};

double closed_form(char kind, int k) {
  switch (kind) {
    case 'f':
      return k * 0.25 - 2.0;
    case 'i':
      return k * 5 - 60;
    case 'u':
      return k * 10;
    default:
      return k % 3 == 0 ? 1 : 0;
  }
}

template <typename T>
void put(std::vector<uint8_t>& bytes, T v) {
  const size_t at = bytes.size();
  bytes.resize(at + sizeof(T));
  std::memcpy(bytes.data() + at, &v, sizeof(T));
}

// Encodes the closed form in `dtype` without going through the code under test.
RawTensor closed_form_tensor(const Case& c) {
  RawTensor t;
  t.dtype = c.dtype;
  t.shape = {2, 3, 4};
  for (int k = 0; k < 24; ++k) {
    const double v = closed_form(c.file[0], k);
    switch (c.dtype) {
      case DType::F32:
        put(t.bytes, float(v));
        break;
      case DType::F64:
        put(t.bytes, v);
        break;
      case DType::F16: {
        // k/4 - 2 on a 1/4 grid in [-2, 3.75]: build the half bits by hand.
        uint16_t h = 0;
        if (v != 0) {
          const double a = std::abs(v);
          const int e = int(std::floor(std::log2(a)));
          const int mant = int(std::lround((a / std::ldexp(1.0, e) - 1.0) * 1024));
          h = uint16_t((v < 0 ? 0x8000 : 0) | ((e + 15) << 10) | mant);
        }
        put(t.bytes, h);
        break;
      }
      case DType::I64:
        put(t.bytes, int64_t(v));
        break;
      case DType::I32:
        put(t.bytes, int32_t(v));
        break;
      case DType::I16:
        put(t.bytes, int16_t(v));
        break;
      case DType::I8:
        put(t.bytes, int8_t(v));
        break;
      case DType::U8:
        put(t.bytes, uint8_t(v));
        break;
      case DType::Bool:
        put(t.bytes, uint8_t(v));
        break;
      default:
        break;
    }
  }
  return t;
}

void expect_npy_error(const std::string& path, const std::string& what) {
  try {
    read_npy(path);
    ADD_FAILURE() << path << ": read, expected an error containing '" << what << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

class NpySamplesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto s = torch_samples();
    ASSERT_TRUE(s.error.empty()) << s.error;
    dir_ = s.dir + "/npy_samples";
  }
  std::string dir_;
};

TEST_F(NpySamplesTest, ReadsWhatNumpyWrote) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.file);
    const RawTensor t = read_npy(dir_ + "/" + c.file + ".npy");
    EXPECT_EQ(t.dtype, c.dtype);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3, 4}));
    const auto f = t.to_float();
    const auto i = t.to_int64();
    ASSERT_EQ(f.size(), 24u);
    for (int k = 0; k < 24; ++k) {
      EXPECT_EQ(f[k], float(closed_form(c.file[0], k))) << k;
      EXPECT_EQ(i[k], int64_t(closed_form(c.file[0], k))) << k;  // exact: floats on the grid, ints as is
    }
    EXPECT_EQ(t.bytes, closed_form_tensor(c).bytes);
  }
}

TEST_F(NpySamplesTest, FormatVersions2And3AndScalars) {
  const RawTensor v1 = read_npy(dir_ + "/f4.npy");
  for (const char* f : {"/f4_v2.npy", "/f4_v3.npy"}) {
    const RawTensor t = read_npy(dir_ + f);
    EXPECT_EQ(t.shape, v1.shape) << f;
    EXPECT_EQ(t.bytes, v1.bytes) << f;
  }
  const RawTensor s = read_npy(dir_ + "/scalar_f8.npy");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.to_float(), std::vector<float>{2.5f});
}

TEST_F(NpySamplesTest, FortranOrderIsReorderedToRowMajor) {
  // np.asfortranarray(np.arange(6).reshape(2, 3)): row-major values are 0..5 whatever the file order.
  const RawTensor t = read_npy(dir_ + "/fortran.npy");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.to_float(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  const RawTensor t3 = read_npy(dir_ + "/fortran3.npy");
  EXPECT_EQ(t3.shape, (std::vector<int64_t>{2, 3, 4}));
  const auto v = t3.to_int64();
  for (int64_t k = 0; k < 24; ++k) EXPECT_EQ(v[k], k);
}

TEST_F(NpySamplesTest, RejectsWhatItCannotRepresent) {
  expect_npy_error(dir_ + "/bigendian.npy", "big-endian");
  expect_npy_error(dir_ + "/complex.npy", "unsupported dtype");
}

TEST_F(NpySamplesTest, WrittenFilesLoadInNumpy) {
  const std::string out = scratch_dir("npy_write");
  for (const Case& c : kCases) write_npy(out + "/" + c.file + ".npy", closed_form_tensor(c));
  RawTensor scalar;
  scalar.dtype = DType::F64;
  put(scalar.bytes, 2.5);
  write_npy(out + "/scalar_f8.npy", scalar);
  RawTensor vec;
  vec.dtype = DType::I32;
  vec.shape = {5};
  for (int32_t k = 0; k < 5; ++k) put(vec.bytes, k);
  write_npy(out + "/vec_i4.npy", vec);
  RawTensor empty;
  empty.shape = {0, 3};
  write_npy(out + "/empty_f4.npy", empty);

  const std::string cmd =
      "/usr/bin/python3 " + std::string(WAVTOK_SOURCE_DIR) + "/python/tests/make_torch_samples.py --check-npy " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;

  // And back: every file round-trips bit for bit.
  for (const Case& c : kCases) {
    const RawTensor want = closed_form_tensor(c);
    const RawTensor got = read_npy(out + "/" + c.file + ".npy");
    EXPECT_EQ(got.dtype, want.dtype);
    EXPECT_EQ(got.shape, want.shape);
    EXPECT_EQ(got.bytes, want.bytes);
  }
  EXPECT_TRUE(read_npy(out + "/empty_f4.npy").bytes.empty());
}

TEST(Npy, CorruptFilesThrow) {
  const std::string dir = scratch_dir("npy_corrupt");
  RawTensor t;
  t.shape = {4, 4};
  t.bytes.assign(64, 0x3f);
  write_npy(dir + "/good.npy", t);
  std::ifstream in(dir + "/good.npy", std::ios::binary);
  const std::string good{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ASSERT_EQ(good.size(), 128u + 64u);

  auto variant = [&](const std::string& name, const std::string& bytes) {
    const std::string p = dir + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  };
  expect_npy_error(dir + "/missing.npy", "cannot open");
  expect_npy_error(variant("empty.npy", ""), "too short");
  expect_npy_error(variant("magic.npy", "XNUMPY" + good.substr(6)), "bad magic");
  expect_npy_error(variant("truncated_data.npy", good.substr(0, good.size() - 1)), "does not match");
  expect_npy_error(variant("extra_data.npy", good + "x"), "does not match");
  expect_npy_error(variant("truncated_header.npy", good.substr(0, 60)), "truncated .npy header");
  expect_npy_error(variant("version.npy", good.substr(0, 6) + "\x07" + good.substr(7)), "version 7");
  std::string bad_shape = good;
  bad_shape.replace(bad_shape.find("(4, 4)"), 6, "(4,-4)");
  expect_npy_error(variant("bad_shape.npy", bad_shape), "malformed .npy header");
  std::string huge = good;
  huge.replace(huge.find("(4, 4)"), 6, "(9999999999999, 99999)");
  huge.erase(huge.find("}") + 1, 16);  // keep the header length consistent
  expect_npy_error(variant("huge.npy", huge), "does not match");
}

TEST(Npy, WriteIsAtomicAndReportsFailures) {
  const std::string dir = scratch_dir("npy_atomic");
  RawTensor a;
  a.shape = {3};
  a.bytes.assign(12, 1);
  write_npy(dir + "/x.npy", a);
  RawTensor b;
  b.dtype = DType::I64;
  b.shape = {2};
  b.bytes.assign(16, 2);
  write_npy(dir + "/x.npy", b);  // replaces the old file
  const RawTensor back = read_npy(dir + "/x.npy");
  EXPECT_EQ(back.dtype, DType::I64);
  EXPECT_EQ(back.bytes, b.bytes);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1u) << "temporary files left behind";

  EXPECT_THROW(write_npy(dir + "/no/such/dir/y.npy", a), Error);
  RawTensor bf;
  bf.dtype = DType::BF16;
  bf.shape = {1};
  bf.bytes.assign(2, 0);
  EXPECT_THROW(write_npy(dir + "/bf16.npy", bf), Error);
  RawTensor wrong = a;
  wrong.bytes.pop_back();
  EXPECT_THROW(write_npy(dir + "/wrong.npy", wrong), Error);
  EXPECT_FALSE(fs::exists(dir + "/bf16.npy"));
  EXPECT_FALSE(fs::exists(dir + "/wrong.npy"));
}

TEST(RawTensor, HalfAndBfloat16Conversions) {
  // Bit patterns with values fixed by the IEEE formats.
  RawTensor h;
  h.dtype = DType::F16;
  const uint16_t hb[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00, 0x8000, 0x3555};
  for (uint16_t v : hb) put(h.bytes, v);
  h.shape = {9};
  const auto f = h.to_float();
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], 65504.0f);
  EXPECT_EQ(f[3], std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f[4], std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(f[5], INFINITY);
  EXPECT_EQ(f[6], -INFINITY);
  EXPECT_TRUE(std::signbit(f[7]) && f[7] == 0);
  EXPECT_EQ(f[8], 0.25f * (1.0f + 341.0f / 1024.0f));  // exponent 13 - 15, mantissa 0x155

  RawTensor b;
  b.dtype = DType::BF16;
  b.shape = {3};
  for (uint16_t v : {uint16_t(0x3f80), uint16_t(0xc0a0), uint16_t(0x7fc0)}) put(b.bytes, v);
  const auto g = b.to_float();
  EXPECT_EQ(g[0], 1.0f);
  EXPECT_EQ(g[1], -5.0f);
  EXPECT_TRUE(std::isnan(g[2]));
  EXPECT_EQ(b.to_int64(), (std::vector<int64_t>{1, -5, 0}));
}

}  // namespace
}  // namespace wavtok
