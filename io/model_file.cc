#include "io/model_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"
#include "core/util.h"

namespace wavtok {
namespace {

constexpr char kMagic[8] = {'W', 'A', 'V', 'T', 'O', 'K', 'M', 'F'};
constexpr uint64_t kAlign = 64;
constexpr uint32_t kDtypeF32 = 0, kDtypeS8 = 1;
constexpr const char* kActQuant = ".act_quant";

// "NAME" for "NAME.weight", "NAME" for an LSTM's "NAME.weight_ih_lK" / "NAME.weight_hh_lK", else "".
std::string int8_layer_of(const std::string& tensor) {
  if (ends_with(tensor, ".weight")) return tensor.substr(0, tensor.size() - 7);
  const size_t dot = tensor.rfind('.');
  if (dot == std::string::npos) return std::string();
  const std::string leaf = tensor.substr(dot + 1);
  if ((leaf.rfind("weight_ih_l", 0) == 0 || leaf.rfind("weight_hh_l", 0) == 0) && leaf.size() > 11 &&
      leaf.find_first_not_of("0123456789", 11) == std::string::npos)
    return tensor.substr(0, dot);
  return std::string();
}

struct Mapping {
  void* addr = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (addr != MAP_FAILED) munmap(addr, size);
  }
};

class Reader {
 public:
  Reader(const uint8_t* p, uint64_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(uint64_t len) {
    need(len);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  void need(uint64_t k) {
    if (k > n_ - pos_) throw Error(path_ + ": model file is truncated (header or tensor table runs past the end)");
  }
  const uint8_t* p_;
  uint64_t n_, pos_ = 0;
  std::string path_;
};

}  // namespace

bool is_model_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char m[8] = {};
  return f.read(m, 8) && std::memcmp(m, kMagic, 8) == 0;
}

uint32_t required_model_features(const WeightMap& weights) {
  uint32_t f = 0;
  for (const auto& [name, t] : weights.all()) {
    if (ends_with(name, kActQuant)) f |= kModelFeatureInt8;
    if (ends_with(name, ".softmax_quant")) f |= kModelFeatureSoftmaxQuant;
    if (ends_with(name, ".attn_int8")) f |= kModelFeatureInt8Attention;
  }
  return f;
}

void write_model_file(const std::string& path, const ModelConfig& config, const WeightMap& weights) {
  const std::string yaml = config.to_yaml();
  const uint32_t features = required_model_features(weights);
  // Int8 layers' weights go out as their s8 codes.
  std::map<std::string, std::vector<int8_t>> codes;
  if (features & kModelFeatureInt8)
    for (const auto& [name, t] : weights.all()) {
      const std::string layer = int8_layer_of(name);
      if (layer.empty() || !weights.has(layer + kActQuant)) continue;
      const Tensor& sc = weights.get(layer + ".weight_scale");
      if (t.ndim() < 2 || sc.numel() != t.dim(0))
        throw Error(path + ": int8 layer " + layer + " has a weight_scale of " + std::to_string(sc.numel()) +
                    " values for weight " + shape_str(t.shape()));
      codes[name] = int8_weight_codes(t.data(), t.numel(), std::vector<float>(sc.data(), sc.data() + sc.numel()));
    }
  auto elem_bytes = [&](const std::string& name) -> uint64_t { return codes.count(name) ? 1 : 4; };
  std::string table;
  auto put = [&](const void* p, size_t n) { table.append(static_cast<const char*>(p), n); };
  // First pass: header + table size, to place data.
  uint64_t table_bytes = 0;
  for (const auto& [name, t] : weights.all()) table_bytes += 4 + name.size() + 4 + 4 + 8 * t.ndim() + 8 + 8;
  uint64_t offset = 32 + yaml.size() + table_bytes;
  offset = (offset + kAlign - 1) / kAlign * kAlign;
  std::vector<uint64_t> offsets;
  for (const auto& [name, t] : weights.all()) {
    offsets.push_back(offset);
    offset += (t.numel() * elem_bytes(name) + kAlign - 1) / kAlign * kAlign;
  }
  size_t i = 0;
  for (const auto& [name, t] : weights.all()) {
    uint32_t nl = static_cast<uint32_t>(name.size()), nd = static_cast<uint32_t>(t.ndim());
    uint32_t dtype = codes.count(name) ? kDtypeS8 : kDtypeF32;
    put(&nl, 4);
    put(name.data(), nl);
    put(&dtype, 4);
    put(&nd, 4);
    for (int d = 0; d < t.ndim(); ++d) {
      int64_t v = t.dim(d);
      put(&v, 8);
    }
    uint64_t off = offsets[i++], nb = static_cast<uint64_t>(t.numel()) * elem_bytes(name);
    put(&off, 8);
    put(&nb, 8);
  }
  AtomicFile out(path);
  std::FILE* f = out.file();
  // Float models keep version 1 (and their bytes); anything needing a feature says so in a version 2 header.
  uint32_t version = features ? kModelFileVersionFeatures : kModelFileVersion, flags = features;
  uint64_t ylen = yaml.size(), count = weights.all().size();
  std::fwrite(kMagic, 1, 8, f);
  std::fwrite(&version, 4, 1, f);
  std::fwrite(&flags, 4, 1, f);
  std::fwrite(&ylen, 8, 1, f);
  std::fwrite(&count, 8, 1, f);
  std::fwrite(yaml.data(), 1, yaml.size(), f);
  std::fwrite(table.data(), 1, table.size(), f);
  uint64_t pos = 32 + yaml.size() + table.size();
  static const char zeros[kAlign] = {};
  i = 0;
  for (const auto& [name, t] : weights.all()) {
    std::fwrite(zeros, 1, offsets[i] - pos, f);
    auto c = codes.find(name);
    if (c != codes.end()) std::fwrite(c->second.data(), 1, c->second.size(), f);
    else std::fwrite(t.data(), 4, t.numel(), f);
    pos = offsets[i] + t.numel() * elem_bytes(name);
    ++i;
  }
  out.commit();
}

void read_model_file(const std::string& path, ModelConfig& config, WeightMap& weights, const ModelFileLimits& limits) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open model file: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  Mapping map;
  map.size = static_cast<size_t>(st.st_size);
  if (map.size < 32) {
    ::close(fd);
    throw Error(path + ": model file is truncated (" + std::to_string(map.size) + " bytes)");
  }
  map.addr = mmap(nullptr, map.size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map.addr == MAP_FAILED) throw Error(path + ": cannot map model file");
  parse_model_file(static_cast<const uint8_t*>(map.addr), map.size, path, config, weights, limits);
}

void parse_model_file(const uint8_t* base, size_t size, const std::string& path, ModelConfig& config,
                      WeightMap& weights, const ModelFileLimits& limits) {
  if (size < 32) throw Error(path + ": model file is truncated (" + std::to_string(size) + " bytes)");
  Reader r(base, size, path);
  if (r.str(8) != std::string(kMagic, 8)) throw Error(path + ": not a wavtok model file (bad magic)");
  const uint32_t version = r.get<uint32_t>();
  if (version != kModelFileVersion && version != kModelFileVersionFeatures)
    throw Error(path + ": model file version " + std::to_string(version) + " is not supported (this build reads " +
                std::to_string(kModelFileVersion) + " and " + std::to_string(kModelFileVersionFeatures) + ")");
  const uint32_t flags = r.get<uint32_t>();
  const uint32_t features = version == kModelFileVersion ? 0 : flags;
  if (features & ~kKnownModelFeatures) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", features & ~kKnownModelFeatures);
    throw Error(path + ": model file requires features this build does not support (bits " + hex +
                "); it was written by a newer wavtok");
  }
  const uint64_t ylen = r.get<uint64_t>(), count = r.get<uint64_t>();
  if (ylen > static_cast<uint64_t>(limits.max_config_bytes)) throw Error(path + ": config section too large");
  if (count > static_cast<uint64_t>(limits.max_tensors))
    throw Error(path + ": too many tensors (" + std::to_string(count) + ")");
  config = ModelConfig::from_yaml(r.str(ylen), path);
  weights = WeightMap(path);
  std::vector<std::string> s8;
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t nl = r.get<uint32_t>();
    if (nl == 0 || nl > static_cast<uint32_t>(limits.max_name)) throw Error(path + ": bad tensor name length");
    std::string name = r.str(nl);
    const uint32_t dtype = r.get<uint32_t>(), nd = r.get<uint32_t>();
    if (dtype != kDtypeF32 && !(dtype == kDtypeS8 && (features & kModelFeatureInt8)))
      throw Error(path + ": tensor '" + name + "' has unsupported dtype " + std::to_string(dtype) +
                  (dtype == kDtypeS8 ? " (s8 outside a file marked int8)" : ""));
    if (nd > static_cast<uint32_t>(limits.max_ndim)) throw Error(path + ": tensor '" + name + "' has too many dims");
    std::vector<int64_t> shape(nd);
    uint64_t numel = 1;
    for (auto& d : shape) {
      d = r.get<int64_t>();
      if (d < 0 || d > (int64_t(1) << 32)) throw Error(path + ": tensor '" + name + "' has a bad dimension");
      if (d && numel > (uint64_t(1) << 40) / uint64_t(d)) throw Error(path + ": tensor '" + name + "' is too large");
      numel *= uint64_t(d);
    }
    const uint64_t off = r.get<uint64_t>(), nb = r.get<uint64_t>();
    if (nb != numel * (dtype == kDtypeS8 ? 1 : 4))
      throw Error(path + ": tensor '" + name + "' byte size does not match its shape");
    if (off > size || nb > size - off)
      throw Error(path + ": tensor '" + name + "' data lies beyond the end of the file (truncated?)");
    Tensor t(shape);
    if (dtype == kDtypeS8) {
      if (int8_layer_of(name).empty() || nd < 2)
        throw Error(path + ": s8 tensor '" + name + "' is not the weight of an int8 layer");
      const int8_t* q = reinterpret_cast<const int8_t*>(base + off);
      for (uint64_t j = 0; j < numel; ++j) t[int64_t(j)] = float(q[j]);  // scaled below, once the scales are read
      s8.push_back(name);
    } else {
      std::memcpy(t.data(), base + off, nb);
    }
    weights.set(name, std::move(t));
  }
  // s8 codes -> codes * weight_scale[o]: the int8 layer's rint(w / scale) gives the stored codes back exactly
  // (|codes| <= 127, so the float rounding of the product is far below half a step).
  for (const std::string& name : s8) {
    const std::string layer = int8_layer_of(name);
    if (!weights.has(layer + kActQuant) || !weights.has(layer + ".weight_scale"))
      throw Error(path + ": s8 weight '" + name + "' has no " + layer + ".act_quant / .weight_scale beside it");
    Tensor& t = weights.all().at(name);
    const Tensor& sc = weights.get(layer + ".weight_scale", {t.dim(0)});
    const int64_t per = t.dim(0) ? t.numel() / t.dim(0) : 0;
    for (int64_t o = 0; o < t.dim(0); ++o)
      for (int64_t j = 0; j < per; ++j) t[o * per + j] *= sc[o];
  }
}

}  // namespace wavtok
