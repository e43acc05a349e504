#include "io/model_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"
#include "core/util.h"
#include "io/lowbit_pack.h"

namespace wavtok {
namespace {

constexpr char kMagic[8] = {'W', 'A', 'V', 'T', 'O', 'K', 'M', 'F'};
constexpr uint64_t kAlign = 64;
constexpr uint32_t kDtypeF32 = 0, kDtypeS8 = 1, kDtypeU8 = 2, kDtypePacked = 3;
constexpr const char* kGroups = "_groups";         // WEIGHT + kGroups: a low-bit weight's group table
constexpr const char* kGroupSize = "_group_size";  // WEIGHT + kGroupSize
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

// The row scales of the int8 weight `name` with `rows` rows: its layer's weight_scale, or, for an LSTM matrix
// (NAME.weight_ih_lK / NAME.weight_hh_lK) whose layer has one scale per row of each matrix ([2 * layers * rows]:
// W_ih_l0, W_hh_l0, W_ih_l1, ...; LstmInt8Params in nn/layers.h), that matrix's rows. Throws, naming `path`, on any
// other size.
std::vector<float> int8_row_scales(const WeightMap& w, const std::string& name, int64_t rows, const std::string& path) {
  const std::string layer = int8_layer_of(name);
  const Tensor& sc = w.get(layer + ".weight_scale");
  if (rows > 0 && sc.numel() == rows) return std::vector<float>(sc.data(), sc.data() + rows);
  const std::string leaf = name.substr(name.rfind('.') + 1);
  const bool ih = leaf.rfind("weight_ih_l", 0) == 0, hh = leaf.rfind("weight_hh_l", 0) == 0;
  int64_t k = -1;
  if ((ih || hh) && rows > 0 && sc.numel() % (2 * rows) == 0) {
    const char* b = leaf.data() + 11;
    const auto [end, ec] = std::from_chars(b, leaf.data() + leaf.size(), k);
    if (ec != std::errc() || end != leaf.data() + leaf.size()) k = -1;
  }
  if (k >= 0 && k < sc.numel() / (2 * rows)) {
    const float* s = sc.data() + (2 * k + (hh ? 1 : 0)) * rows;
    return std::vector<float>(s, s + rows);
  }
  throw Error(path + ": int8 layer " + layer + " has a weight_scale of " + std::to_string(sc.numel()) +
              " values for its weight " + name + " of " + std::to_string(rows) + " rows");
}

// "WEIGHT" for "WEIGHT_groups" when WEIGHT is a quantizable weight (NAME.weight, an LSTM's NAME.weight_ih_lK ...).
std::string lowbit_weight_of(const std::string& tensor) {
  if (!ends_with(tensor, kGroups)) return std::string();
  std::string w = tensor.substr(0, tensor.size() - std::strlen(kGroups));
  return int8_layer_of(w).empty() ? std::string() : w;
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
    if (!lowbit_weight_of(name).empty()) f |= kModelFeatureLowBit;
    if (ends_with(name, ".lora_a") || ends_with(name, ".lora_b")) f |= kModelFeatureLowRank;
    if (ends_with(name, ".attn_int8")) f |= kModelFeatureInt8Attention;
    if (ends_with(name, ".act_dynamic")) f |= kModelFeatureTokenAct;
    if (ends_with(name, ".act_group")) f |= kModelFeatureGroupAct;
    if (ends_with(name, std::string("encoder.") + kEncoderConvBf16)) f |= kModelFeatureBf16Encoder;
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
      if (t.ndim() < 2)
        throw Error(path + ": int8 layer " + layer + " has a weight " + shape_str(t.shape()) + " of fewer than 2 dims");
      codes[name] = int8_weight_codes(t.data(), t.numel(), int8_row_scales(weights, name, t.dim(0), path));
    }
  // Low-bit layers: NAME.weight packed, NAME.weight_groups as bytes.
  std::map<std::string, std::vector<uint8_t>> raw;
  std::map<std::string, uint32_t> raw_dtype;
  if (features & kModelFeatureLowBit)
    for (const auto& [name, t] : weights.all()) {
      const std::string wname = lowbit_weight_of(name);
      if (wname.empty()) continue;
      const std::string layer = int8_layer_of(wname);
      if (!weights.has(wname) || !weights.has(layer + ".weight_scale") || !weights.has(wname + kGroupSize))
        throw Error(path + ": low-bit weight " + wname + " lacks its tensor, weight_scale or group size");
      const Tensor& w = weights.get(wname);
      const Tensor& sc = weights.get(layer + ".weight_scale");
      const int64_t rows = w.ndim() >= 2 ? w.dim(0) : 0, cols = rows ? w.numel() / rows : 0;
      const int64_t group = int64_t(weights.get(wname + kGroupSize, {1})[0]);
      if (rows == 0 || sc.numel() != rows || group <= 0 || t.ndim() != 3 || t.dim(0) != rows ||
          t.dim(1) != (cols + group - 1) / group || t.dim(2) != 2)
        throw Error(path + ": low-bit layer " + layer + " has inconsistent weight " + shape_str(w.shape()) +
                    ", weight_scale, groups " + shape_str(t.shape()) + " or group size");
      std::vector<uint8_t> meta(static_cast<size_t>(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i) {
        if (!(t[i] >= 0 && t[i] <= 255) || t[i] != std::floor(t[i]))
          throw Error(path + ": low-bit layer " + layer + " has a group value that is not a byte");
        meta[size_t(i)] = uint8_t(t[i]);
      }
      std::vector<uint8_t> bits, mult;
      for (int64_t g = 0; g < t.numel() / 2; ++g) {
        bits.push_back(meta[size_t(2 * g)]);
        mult.push_back(meta[size_t(2 * g + 1)]);
      }
      const std::vector<int8_t> c =
          int8_weight_codes(w.data(), w.numel(), std::vector<float>(sc.data(), sc.data() + sc.numel()));
      // throws if a code is off its group's grid
      raw[wname] = pack_lowbit(c, bits, mult, rows, cols, group, path + ": low-bit weight " + wname);
      raw_dtype[wname] = kDtypePacked;
      codes.erase(wname);
      raw[name] = std::move(meta);
      raw_dtype[name] = kDtypeU8;
    }
  auto data_bytes = [&](const std::string& name, const Tensor& t) -> uint64_t {
    auto r = raw.find(name);
    if (r != raw.end()) return r->second.size();
    return uint64_t(t.numel()) * (codes.count(name) ? 1 : 4);
  };
  auto dtype_of = [&](const std::string& name) -> uint32_t {
    auto r = raw_dtype.find(name);
    if (r != raw_dtype.end()) return r->second;
    return codes.count(name) ? kDtypeS8 : kDtypeF32;
  };
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
    offset += (data_bytes(name, t) + kAlign - 1) / kAlign * kAlign;
  }
  size_t i = 0;
  for (const auto& [name, t] : weights.all()) {
    uint32_t nl = static_cast<uint32_t>(name.size()), nd = static_cast<uint32_t>(t.ndim());
    uint32_t dtype = dtype_of(name);
    put(&nl, 4);
    put(name.data(), nl);
    put(&dtype, 4);
    put(&nd, 4);
    for (int d = 0; d < t.ndim(); ++d) {
      int64_t v = t.dim(d);
      put(&v, 8);
    }
    uint64_t off = offsets[i++], nb = data_bytes(name, t);
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
    auto rw = raw.find(name);
    if (rw != raw.end()) std::fwrite(rw->second.data(), 1, rw->second.size(), f);
    else if (c != codes.end()) std::fwrite(c->second.data(), 1, c->second.size(), f);
    else std::fwrite(t.data(), 4, t.numel(), f);
    pos = offsets[i] + data_bytes(name, t);
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
  struct Packed {
    std::string name;
    uint64_t off, nb;
  };
  std::vector<Packed> packed;
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t nl = r.get<uint32_t>();
    if (nl == 0 || nl > static_cast<uint32_t>(limits.max_name)) throw Error(path + ": bad tensor name length");
    std::string name = r.str(nl);
    const uint32_t dtype = r.get<uint32_t>(), nd = r.get<uint32_t>();
    const bool lowbit_dtype = dtype == kDtypeU8 || dtype == kDtypePacked;
    if (dtype != kDtypeF32 && !(dtype == kDtypeS8 && (features & kModelFeatureInt8)) &&
        !(lowbit_dtype && (features & kModelFeatureLowBit)))
      throw Error(path + ": tensor '" + name + "' has unsupported dtype " + std::to_string(dtype) +
                  (dtype == kDtypeS8 ? " (s8 outside a file marked int8)"
                   : lowbit_dtype    ? " (low-bit outside a file marked lowbit)"
                                     : ""));
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
    if (dtype != kDtypePacked && nb != numel * (dtype == kDtypeF32 ? 4 : 1))
      throw Error(path + ": tensor '" + name + "' byte size does not match its shape");
    if (dtype == kDtypePacked && (nb > numel || nb * 4 < numel || nd < 2))  // 2..8 bits per code; exact below
      throw Error(path + ": packed tensor '" + name + "' byte size does not match its shape");
    if (off > size || nb > size - off)
      throw Error(path + ": tensor '" + name + "' data lies beyond the end of the file (truncated?)");
    Tensor t(shape);
    if (dtype == kDtypeS8) {
      if (int8_layer_of(name).empty() || nd < 2)
        throw Error(path + ": s8 tensor '" + name + "' is not the weight of an int8 layer");
      const int8_t* q = reinterpret_cast<const int8_t*>(base + off);
      for (uint64_t j = 0; j < numel; ++j) t[int64_t(j)] = float(q[j]);  // scaled below, once the scales are read
      s8.push_back(name);
    } else if (dtype == kDtypeU8) {
      if (lowbit_weight_of(name).empty())
        throw Error(path + ": u8 tensor '" + name + "' is not the group table of a low-bit weight");
      for (uint64_t j = 0; j < numel; ++j) t[int64_t(j)] = float(base[off + j]);
    } else if (dtype == kDtypePacked) {
      if (int8_layer_of(name).empty()) throw Error(path + ": packed tensor '" + name + "' is not a layer weight");
      packed.push_back({name, off, nb});
    } else {
      std::memcpy(t.data(), base + off, nb);
    }
    if ((ends_with(name, ".lora_a") || ends_with(name, ".lora_b")) && !(features & kModelFeatureLowRank))
      throw Error(path + ": tensor '" + name + "' is a low-rank adapter, but the file does not declare the " +
                  "low-rank feature (bit 4); refusing to run the layer without it");
    if (ends_with(name, ".act_dynamic") && !(features & kModelFeatureTokenAct))
      throw Error(path + ": tensor '" + name + "' marks per-token activations, but the file does not declare the " +
                  "per-token feature (bit 5); refusing to run the layer without it");
    if (ends_with(name, ".act_group") && !(features & kModelFeatureGroupAct))
      throw Error(path + ": tensor '" + name + "' sets per-group activation ranges, but the file does not declare " +
                  "the per-group feature (bit 7); refusing to run the layer without it");
    if (ends_with(name, std::string("encoder.") + kEncoderConvBf16) && !(features & kModelFeatureBf16Encoder))
      throw Error(path + ": tensor '" + name + "' asks for bf16 encoder convolutions, but the file does not declare " +
                  "the bf16-encoder feature (bit 6); refusing to run it without");
    if (weights.has(name)) throw Error(path + ": tensor '" + name + "' appears twice");
    weights.set(name, std::move(t));
  }
  // Packed low-bit codes -> codes * weight_scale[o] (as for s8), after checking every group parameter.
  for (const Packed& pk : packed) {
    const std::string layer = int8_layer_of(pk.name);
    const std::string what = path + ": low-bit weight " + pk.name;
    if (!weights.has(pk.name + kGroups) || !weights.has(pk.name + kGroupSize) || !weights.has(layer + ".weight_scale"))
      throw Error(what + " lacks its group table (" + pk.name + kGroups + "), group size or " + layer +
                  ".weight_scale");
    Tensor& t = weights.all().at(pk.name);
    const int64_t rows = t.dim(0), cols = rows ? t.numel() / rows : 0;
    const Tensor& gs = weights.get(pk.name + kGroupSize);
    if (gs.numel() != 1 || !(gs[0] >= 1 && gs[0] <= float(cols)) || gs[0] != std::floor(gs[0]))
      throw Error(what + " has a bad group size");
    const int64_t group = int64_t(gs[0]), G = (cols + group - 1) / group;
    const Tensor& g = weights.get(pk.name + kGroups);
    if (g.ndim() != 3 || g.dim(0) != rows || g.dim(1) != G || g.dim(2) != 2)
      throw Error(what + ": its group table is " + shape_str(g.shape()) + ", expected [" + std::to_string(rows) + ", " +
                  std::to_string(G) + ", 2]");
    const Tensor& sc = weights.get(layer + ".weight_scale");
    if (sc.numel() != rows) throw Error(what + ": weight_scale has " + std::to_string(sc.numel()) + " values");
    for (int64_t o = 0; o < rows; ++o)
      if (!(sc[o] > 0) || !std::isfinite(sc[o])) throw Error(what + ": weight_scale holds a bad value");
    std::vector<uint8_t> bits(size_t(rows * G)), mult(size_t(rows * G));
    for (int64_t i = 0; i < g.numel(); ++i)  // f32 if a hostile file stored it so: only bytes are group values
      if (!(g[i] >= 0 && g[i] <= 255) || g[i] != std::floor(g[i]))
        throw Error(what + ": its group table holds a value that is not a byte");
    for (int64_t k = 0; k < rows * G; ++k) bits[size_t(k)] = uint8_t(g[2 * k]), mult[size_t(k)] = uint8_t(g[2 * k + 1]);
    const std::vector<int8_t> c =
        unpack_lowbit(std::span<const uint8_t>(base + pk.off, pk.nb), bits, mult, rows, cols, group, what);
    for (int64_t o = 0; o < rows; ++o)
      for (int64_t j = 0; j < cols; ++j) t[o * cols + j] = float(c[size_t(o * cols + j)]) * sc[o];
  }
  for (const auto& [name, t] : weights.all())
    if (!lowbit_weight_of(name).empty() &&
        std::none_of(packed.begin(), packed.end(), [&n = name](const Packed& p) { return p.name + "_groups" == n; }))
      throw Error(path + ": " + name + " has no packed weight beside it");
  // s8 codes -> codes * weight_scale[o]: the int8 layer's rint(w / scale) gives the stored codes back exactly
  // (|codes| <= 127, so the float rounding of the product is far below half a step).
  for (const std::string& name : s8) {
    const std::string layer = int8_layer_of(name);
    if (!weights.has(layer + kActQuant) || !weights.has(layer + ".weight_scale"))
      throw Error(path + ": s8 weight '" + name + "' has no " + layer + ".act_quant / .weight_scale beside it");
    Tensor& t = weights.all().at(name);
    const std::vector<float> sc = int8_row_scales(weights, name, t.dim(0), path);
    const int64_t per = t.dim(0) ? t.numel() / t.dim(0) : 0;
    for (int64_t o = 0; o < t.dim(0); ++o)
      for (int64_t j = 0; j < per; ++j) t[o * per + j] *= sc[o];
  }
}

}  // namespace wavtok
