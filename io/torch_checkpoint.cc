#include "io/torch_checkpoint.h"

#include <zip.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unordered_map>

#include "core/error.h"
#include "io/torch_pickle.h"

namespace wavtok {
namespace {

using torch_pickle::Kind;
using torch_pickle::ObjKind;
using torch_pickle::PickleGraph;
using torch_pickle::TensorRef;
using torch_pickle::Value;

constexpr size_t kMaxNameLength = 1 << 16;

// ---- zip container ----

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

class Zip {
 public:
  explicit Zip(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw Error(path + ": no such file");
    if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, not a checkpoint file");
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw Error(path + ": cannot read: " + ec.message());
    if (size == 0) throw Error(path + ": empty file, not a PyTorch checkpoint");
    file_size_ = size;
    int err = 0;
    zip_.reset(zip_open(path.c_str(), ZIP_RDONLY, &err));
    if (!zip_) {
      zip_error_t ze;
      zip_error_init_with_code(&ze, err);
      std::string msg = path + ": not a readable zip archive (" + zip_error_strerror(&ze) + ")";
      zip_error_fini(&ze);
      if (err == ZIP_ER_NOZIP || err == ZIP_ER_INCONS)
        msg += "; torch.save writes zip archives since PyTorch 1.6 - legacy or truncated files are not supported";
      throw Error(msg);
    }
  }

  std::vector<std::string> names() const {
    const zip_int64_t n = zip_get_num_entries(zip_.get(), 0);
    std::vector<std::string> out;
    for (zip_int64_t i = 0; i < n; ++i)
      if (const char* name = zip_get_name(zip_.get(), zip_uint64_t(i), 0)) out.emplace_back(name);
    return out;
  }

  bool has(const std::string& name) const { return zip_name_locate(zip_.get(), name.c_str(), 0) >= 0; }

  // Uncompressed size of an entry, or an error naming it when missing.
  uint64_t size(const std::string& name) const {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(zip_.get(), name.c_str(), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
      throw Error(path_ + ": archive has no entry '" + name + "'");
    // The sizes come from the central directory: a stored entry holds exactly its bytes, which lie in the file.
    // (Checked before anything is allocated for the entry; torch.save writes stored entries only.)
    if ((st.valid & ZIP_STAT_COMP_SIZE) && st.comp_size > file_size_)
      throw Error(path_ + ": entry '" + name + "' claims " + std::to_string(st.comp_size) +
                  " compressed bytes, more than the file holds (corrupt archive)");
    if ((st.valid & ZIP_STAT_COMP_METHOD) && (st.valid & ZIP_STAT_COMP_SIZE) && st.comp_method == ZIP_CM_STORE &&
        st.size != st.comp_size)
      throw Error(path_ + ": entry '" + name + "' claims " + std::to_string(st.size) + " bytes but stores " +
                  std::to_string(st.comp_size) + " (corrupt archive)");
    return st.size;
  }

  // Reads a whole entry (stored or deflated); `expected` is its size from size().
  std::vector<uint8_t> read(const std::string& name, uint64_t expected) const {
    std::unique_ptr<zip_file_t, ZipFileCloser> f(zip_fopen(zip_.get(), name.c_str(), 0));
    if (!f) throw Error(path_ + ": cannot open entry '" + name + "': " + zip_strerror(zip_.get()));
    // Read through a small cache-resident chunk and append within reserved capacity: a vector sized up front
    // would be zero-filled first, an extra pass over memory that costs as much as the copy itself.
    std::vector<uint8_t> buf;
    // Compressed entries may claim any size: reserve no more than the file could plausibly expand to.
    buf.reserve(static_cast<size_t>(std::min<uint64_t>(expected, file_size_)));
    constexpr size_t kChunk = 1 << 20;
    std::unique_ptr<uint8_t[]> chunk(new uint8_t[kChunk]);
    uint64_t got = 0;
    while (got < expected) {
      const zip_int64_t r = zip_fread(f.get(), chunk.get(), std::min<uint64_t>(kChunk, expected - got));
      if (r < 0) throw Error(path_ + ": cannot read entry '" + name + "': " + zip_file_strerror(f.get()));
      if (r == 0) break;
      buf.insert(buf.end(), chunk.get(), chunk.get() + r);
      got += uint64_t(r);
    }
    if (got != expected)
      throw Error(path_ + ": entry '" + name + "' is truncated (" + std::to_string(got) + " of " +
                  std::to_string(expected) + " bytes)");
    // A further read reaches the end of the stream, where libzip verifies the CRC.
    uint8_t extra;
    if (zip_fread(f.get(), &extra, 1) != 0)
      throw Error(path_ + ": entry '" + name + "' is corrupt (size or checksum mismatch)");
    return buf;
  }

 private:
  std::string path_;
  uint64_t file_size_ = 0;
  std::unique_ptr<zip_t, ZipCloser> zip_;
};

// ---- walking the object graph into dotted names ----

class Walker {
 public:
  Walker(const PickleGraph& g, const std::string& path, const CheckpointLimits& lim, size_t pickle_bytes,
         TorchCheckpoint& out)
      : g_(g), path_(path), lim_(lim), out_(out) {
    // Shared sub-objects are walked once per path that reaches them; this stops a pickle whose
    // containers reference each other repeatedly from expanding exponentially.
    visit_budget_ = std::max<int64_t>(1'000'000, 4 * int64_t(pickle_bytes));
    text_budget_ = std::max<int64_t>(1 << 24, 16 * int64_t(pickle_bytes));
  }

  std::vector<std::pair<std::string, uint32_t>> tensors;  // name -> index into g.tensors

  void walk() {
    std::string name;
    visit(g_.root, name, 0);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(path_ + ": " + what); }

  void scalar(const std::string& name, std::string text) {
    text_budget_ -= int64_t(name.size() + text.size());
    if (text_budget_ < 0) fail("pickle expands into too much text (shared strings referenced too often)");
    out_.scalars[name] = std::move(text);
  }

  // Dict keys become name components when they are plain scalars; other keys are skipped.
  bool key_text(const Value& k, std::string& s) const {
    switch (k.kind) {
      case Kind::None:
        s = "None";
        return true;
      case Kind::Bool:
        s = k.i ? "True" : "False";
        return true;
      case Kind::Int:
        s = std::to_string(k.i);
        return true;
      case Kind::Float:
        s = torch_pickle::python_float_repr(k.f);
        return true;
      case Kind::Ref: {
        const auto& o = g_.objs[k.ref];
        if (o.kind != ObjKind::Str && o.kind != ObjKind::BigInt) return false;
        s = o.text;
        return true;
      }
    }
    return false;
  }

  void child(const Value& v, std::string& name, const std::string& component, int depth) {
    const size_t keep = name.size();
    if (!name.empty()) name += '.';
    name += component;
    if (name.size() > kMaxNameLength) fail("tensor/scalar name longer than " + std::to_string(kMaxNameLength));
    visit(v, name, depth);
    name.resize(keep);
  }

  void visit(const Value& v, std::string& name, int depth) {
    if (--visit_budget_ < 0) fail("pickle structure references shared objects too often");
    if (depth > lim_.max_nesting_depth)
      fail("pickle nests deeper than " + std::to_string(lim_.max_nesting_depth) + " levels (or is cyclic)");
    switch (v.kind) {
      case Kind::None:
        scalar(name, "None");
        return;
      case Kind::Bool:
        scalar(name, v.i ? "True" : "False");
        return;
      case Kind::Int:
        scalar(name, std::to_string(v.i));
        return;
      case Kind::Float:
        scalar(name, torch_pickle::python_float_repr(v.f));
        return;
      case Kind::Ref:
        break;
    }
    const auto& o = g_.objs[v.ref];
    switch (o.kind) {
      case ObjKind::Str:
      case ObjKind::BigInt:
        scalar(name, o.text);
        return;
      case ObjKind::Tensor:
        tensors.emplace_back(name, uint32_t(o.index));
        if (depth == 1) out_.root_tensor_names.push_back(name);
        return;
      case ObjKind::List:
      case ObjKind::Tuple:
      case ObjKind::Dict:
      case ObjKind::Object:
        // Opaque objects expose only what was appended/set into them (dict and list subclasses).
        for (size_t i = 0; i < o.items.size(); ++i) child(o.items[i], name, std::to_string(i), depth + 1);
        for (size_t i = 0; i + 1 < o.kv.size(); i += 2) {
          std::string key;
          if (key_text(o.kv[i], key)) child(o.kv[i + 1], name, key, depth + 1);
        }
        return;
      case ObjKind::Bytes:
      case ObjKind::Set:
      case ObjKind::Global:
      case ObjKind::Storage:
        return;
    }
  }

  const PickleGraph& g_;
  const std::string& path_;
  const CheckpointLimits& lim_;
  TorchCheckpoint& out_;
  int64_t visit_budget_ = 0, text_budget_ = 0;
};

// ---- materialising tensors ----

bool is_contiguous(const TensorRef& t) {
  int64_t expected = 1;
  for (size_t d = t.size.size(); d-- > 0;) {
    if (t.size[d] != 1 && t.stride[d] != expected) return false;
    expected *= t.size[d];
  }
  return true;
}

template <size_t ES>
void copy_strided_row(const uint8_t* src, int64_t n, int64_t stride, uint8_t* dst) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * ES, src + i * stride * ES, ES);
}

// Gathers a strided view of `storage` into a contiguous row-major buffer. Bounds were checked when the
// tensor was rebuilt (offset + sum((size-1)*stride) < storage numel) and the storage length against numel.
void gather(const uint8_t* storage, size_t es, const TensorRef& t, uint8_t* out) {
  if (t.numel == 0) return;
  const uint8_t* base = storage + size_t(t.offset) * es;
  if (is_contiguous(t)) {
    std::memcpy(out, base, size_t(t.numel) * es);
    return;
  }
  const size_t nd = t.size.size();
  const int64_t inner = t.size[nd - 1], inner_stride = t.stride[nd - 1];
  std::vector<int64_t> idx(nd - 1, 0);
  int64_t src_off = 0;  // elements, for the current outer index
  const int64_t rows = t.numel / inner;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = base + size_t(src_off) * es;
    if (inner_stride == 1) {
      std::memcpy(out, src, size_t(inner) * es);
    } else {
      switch (es) {
        case 1:
          copy_strided_row<1>(src, inner, inner_stride, out);
          break;
        case 2:
          copy_strided_row<2>(src, inner, inner_stride, out);
          break;
        case 4:
          copy_strided_row<4>(src, inner, inner_stride, out);
          break;
        default:
          copy_strided_row<8>(src, inner, inner_stride, out);
          break;
      }
    }
    out += size_t(inner) * es;
    // Odometer increment over the outer dimensions.
    for (size_t d = nd - 1; d-- > 0;) {
      src_off += t.stride[d];
      if (++idx[d] < t.size[d]) break;
      src_off -= t.stride[d] * t.size[d];
      idx[d] = 0;
    }
  }
}

std::string find_pickle(const Zip& zip, const std::string& path) {
  std::string best;
  bool found = false;
  for (const std::string& n : zip.names()) {
    const size_t slash = n.find('/');
    const bool top = n == "data.pkl";
    const bool nested = slash != std::string::npos && n.compare(slash, std::string::npos, "/data.pkl") == 0;
    if ((top || nested) && (!found || n.size() < best.size())) {
      best = n;
      found = true;
    }
  }
  if (!found) throw Error(path + ": zip archive has no data.pkl, so it is not a torch.save checkpoint");
  return best;
}

}  // namespace

TorchCheckpoint load_torch_checkpoint(const std::string& path, const CheckpointLimits& limits) {
  const Zip zip(path);
  const std::string pkl_name = find_pickle(zip, path);
  const std::string prefix = pkl_name.substr(0, pkl_name.size() - std::strlen("data.pkl"));

  if (zip.has(prefix + "byteorder")) {
    const std::string bo_name = prefix + "byteorder";
    const uint64_t n = zip.size(bo_name);
    if (n > 16) throw Error(path + ": malformed '" + bo_name + "'");
    const std::vector<uint8_t> bo = zip.read(bo_name, n);
    if (std::string(bo.begin(), bo.end()) != "little")
      throw Error(path + ": big-endian checkpoints are not supported (byteorder '" + std::string(bo.begin(), bo.end()) +
                  "')");
  }

  const uint64_t pkl_size = zip.size(pkl_name);
  if (pkl_size > uint64_t(limits.max_pickle_bytes))
    throw Error(path + ": " + pkl_name + " is " + std::to_string(pkl_size) + " bytes, over the limit of " +
                std::to_string(limits.max_pickle_bytes));
  const std::vector<uint8_t> pkl = zip.read(pkl_name, pkl_size);
  const PickleGraph g = torch_pickle::run_pickle(
      std::string_view(reinterpret_cast<const char*>(pkl.data()), pkl.size()), path + ": " + pkl_name, limits);

  TorchCheckpoint ck;
  Walker w(g, path, limits, pkl.size(), ck);
  w.walk();
  if (int64_t(w.tensors.size()) > limits.max_tensors)
    throw Error(path + ": more than " + std::to_string(limits.max_tensors) + " tensors");

  // Group tensors by storage entry so each entry is read once, however many tensors view it.
  std::unordered_map<std::string, std::vector<size_t>> by_key;
  std::vector<std::string> key_order;
  for (size_t i = 0; i < w.tensors.size(); ++i) {
    const std::string& key = g.storages[g.tensors[w.tensors[i].second].storage].key;
    auto [it, inserted] = by_key.try_emplace(key);
    if (inserted) key_order.push_back(key);
    it->second.push_back(i);
  }

  for (const std::string& key : key_order) {
    const std::vector<size_t>& users = by_key[key];
    const std::string entry = prefix + "data/" + key;
    if (!zip.has(entry)) throw Error(path + ": storage entry '" + entry + "' is missing from the archive");
    const uint64_t entry_size = zip.size(entry);
    for (size_t u : users) {
      const auto& st = g.storages[g.tensors[w.tensors[u].second].storage];
      const uint64_t need = uint64_t(st.numel) * dtype_size(st.dtype);
      if (need > entry_size)
        throw Error(path + ": storage entry '" + entry + "' holds " + std::to_string(entry_size) +
                    " bytes but the checkpoint declares " + std::to_string(st.numel) + " " + dtype_name(st.dtype) +
                    " elements (" + std::to_string(need) + " bytes)");
    }
    std::vector<uint8_t> data = zip.read(entry, entry_size);

    for (size_t u : users) {
      const auto& [name, ti] = w.tensors[u];
      const TensorRef& t = g.tensors[ti];
      const size_t es = dtype_size(t.dtype);
      RawTensor rt;
      rt.dtype = t.dtype;
      rt.shape = t.size;
      // A single contiguous tensor covering its whole storage (the usual case) takes the buffer as is.
      if (users.size() == 1 && t.offset == 0 && is_contiguous(t) && uint64_t(t.numel) * es == data.size()) {
        rt.bytes = std::move(data);
      } else {
        rt.bytes.resize(size_t(t.numel) * es);
        gather(data.data(), es, t, rt.bytes.data());
      }
      ck.tensors.insert_or_assign(name, std::move(rt));
    }
  }
  return ck;
}

std::map<std::string, RawTensor> TorchCheckpoint::state_dict() const {
  static const std::string kPrefix = "state_dict.";
  std::map<std::string, RawTensor> out;
  for (auto it = tensors.lower_bound(kPrefix); it != tensors.end() && it->first.starts_with(kPrefix); ++it)
    out.emplace(it->first.substr(kPrefix.size()), it->second);
  if (!out.empty()) return out;
  for (const std::string& n : root_tensor_names)
    if (auto it = tensors.find(n); it != tensors.end()) out.emplace(n, it->second);
  return out;
}

std::map<std::string, RawTensor> TorchCheckpoint::take_state_dict() {
  static const std::string kPrefix = "state_dict.";
  std::map<std::string, RawTensor> out;
  auto it = tensors.lower_bound(kPrefix);
  while (it != tensors.end() && it->first.starts_with(kPrefix)) {
    auto node = tensors.extract(it++);
    out.emplace(node.key().substr(kPrefix.size()), std::move(node.mapped()));
  }
  if (!out.empty()) return out;
  for (const std::string& n : root_tensor_names)
    if (auto node = tensors.extract(n)) out.insert(std::move(node));
  return out;
}

}  // namespace wavtok
