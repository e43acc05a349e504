#include "io/torch_pickle.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "core/error.h"

namespace wavtok::torch_pickle {
namespace {

struct StorageType {
  const char* name;
  DType dtype;
};
// torch.save names a storage by its legacy typed class; UntypedStorage holds raw bytes.
constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", DType::F32},     {"torch.DoubleStorage", DType::F64}, {"torch.HalfStorage", DType::F16},
    {"torch.BFloat16Storage", DType::BF16}, {"torch.LongStorage", DType::I64},   {"torch.IntStorage", DType::I32},
    {"torch.ShortStorage", DType::I16},     {"torch.CharStorage", DType::I8},    {"torch.ByteStorage", DType::U8},
    {"torch.BoolStorage", DType::Bool},     {"torch.UntypedStorage", DType::U8},
};

// torch.dtype objects pickle as globals such as torch.float16.
struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kTorchDTypes[] = {
    {"torch.float32", DType::F32},   {"torch.float64", DType::F64}, {"torch.float16", DType::F16},
    {"torch.bfloat16", DType::BF16}, {"torch.int64", DType::I64},   {"torch.int32", DType::I32},
    {"torch.int16", DType::I16},     {"torch.int8", DType::I8},     {"torch.uint8", DType::U8},
    {"torch.bool", DType::Bool},
};

const DType* torch_dtype(const std::string& name) {
  for (const auto& d : kTorchDTypes)
    if (name == d.name) return &d.dtype;
  return nullptr;
}

constexpr int kMaxDims = 64;
constexpr size_t kMaxGlobalName = 4096;
constexpr size_t kMaxBigIntBytes = 256;
constexpr int kMaxCallNesting = 8;

// Little-endian two's-complement integer of any width -> decimal text.
std::string bigint_decimal(std::string_view le) {
  std::vector<uint8_t> mag(le.rbegin(), le.rend());  // big-endian
  const bool neg = !mag.empty() && (mag[0] & 0x80);
  if (neg) {  // magnitude = ~x + 1
    for (auto& b : mag) b = uint8_t(~b);
    for (size_t i = mag.size(); i-- > 0;)
      if (++mag[i] != 0) break;
  }
  std::string digits;
  size_t start = 0;
  while (start < mag.size()) {
    unsigned rem = 0;
    for (size_t i = start; i < mag.size(); ++i) {
      const unsigned cur = (rem << 8) | mag[i];
      mag[i] = uint8_t(cur / 10);
      rem = cur % 10;
    }
    digits.push_back(char('0' + rem));
    while (start < mag.size() && mag[start] == 0) ++start;
  }
  if (digits.empty()) digits.push_back('0');
  if (neg) digits.push_back('-');
  std::reverse(digits.begin(), digits.end());
  return digits;
}

class Machine {
 public:
  Machine(std::string_view data, const std::string& where, const CheckpointLimits& limits)
      : d_(data), where_(where), lim_(limits) {}

  PickleGraph run() {
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = u8();
      if (op == '.') {  // STOP
        g_.root = pop();
        return std::move(g_);
      }
      step(op);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": " + what + " (at byte offset " + std::to_string(op_pos_) + ")");
  }

  // ---- input ----
  const uint8_t* take(uint64_t n) {
    if (n > d_.size() - pos_)
      fail("truncated pickle: needs " + std::to_string(n) + " more bytes, " + std::to_string(d_.size() - pos_) +
           " left");
    const auto* p = reinterpret_cast<const uint8_t*>(d_.data() + pos_);
    pos_ += size_t(n);
    return p;
  }
  uint8_t u8() { return *take(1); }
  uint64_t le(int n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string_view bytes(uint64_t n) {
    const uint8_t* p = take(n);
    return {reinterpret_cast<const char*>(p), size_t(n)};
  }
  std::string_view line() {
    const size_t end = d_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > kMaxGlobalName) fail("truncated or overlong GLOBAL name");
    std::string_view s = d_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  // ---- values ----
  static Value integer(int64_t v) {
    Value x;
    x.kind = Kind::Int;
    x.i = v;
    return x;
  }
  static Value boolean(bool b) {
    Value x;
    x.kind = Kind::Bool;
    x.i = b;
    return x;
  }
  Value make(ObjKind k, std::string text = {}) {
    if (g_.objs.size() >= UINT32_MAX || int64_t(g_.objs.size()) >= lim_.max_objects)
      fail("more than " + std::to_string(lim_.max_objects) + " objects");
    g_.objs.push_back(Obj{k, std::move(text), {}, {}, -1});
    Value x;
    x.kind = Kind::Ref;
    x.ref = uint32_t(g_.objs.size() - 1);
    return x;
  }
  Obj* obj(const Value& v) { return v.kind == Kind::Ref ? &g_.objs[v.ref] : nullptr; }
  const std::string* str(const Value& v) {
    const Obj* o = obj(v);
    return o && o->kind == ObjKind::Str ? &o->text : nullptr;
  }

  // ---- stack and marks ----
  size_t frame() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value v) {
    if (int64_t(stack_.size()) >= lim_.max_objects)
      fail("stack holds more than " + std::to_string(lim_.max_objects) + " values");
    stack_.push_back(v);
  }
  Value pop() {
    if (stack_.size() <= frame()) fail("stack underflow");
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value& top() {
    if (stack_.size() <= frame()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Value> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop");
    const size_t k = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(stack_.begin() + std::ptrdiff_t(k), stack_.end());
    stack_.resize(k);
    return items;
  }

  void memo_put(uint64_t idx) {
    if (memo_.size() >= size_t(lim_.max_memo_entries) && !memo_.count(idx))
      fail("memo exceeds " + std::to_string(lim_.max_memo_entries) + " entries");
    memo_[idx] = top();
  }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo key " + std::to_string(idx) + " was never stored");
    push(it->second);
  }

  // ---- container mutation ----
  void append(Value target, const Value* first, size_t n) {
    Obj* o = obj(target);
    if (!o || (o->kind != ObjKind::List && o->kind != ObjKind::Object && o->kind != ObjKind::Set))
      fail("APPEND/ADDITEMS target is not a list");
    o->items.insert(o->items.end(), first, first + n);
  }
  void setitems(Value target, const Value* first, size_t n) {
    if (n % 2) fail("SETITEMS with an odd number of items");
    Obj* o = obj(target);
    if (!o || (o->kind != ObjKind::Dict && o->kind != ObjKind::Object)) fail("SETITEM target is not a dict");
    o->kv.insert(o->kv.end(), first, first + n);
  }
  Value sequence(ObjKind k, std::vector<Value> items) {
    Value v = make(k);
    g_.objs[v.ref].items = std::move(items);
    return v;
  }

  // ---- torch ----
  Value persistent_load(const Value& pid) {
    const Obj* t = obj(pid);
    if (!t || t->kind != ObjKind::Tuple || t->items.size() != 5) fail("unsupported persistent id (expected a 5-tuple)");
    const std::string* tag = str(t->items[0]);
    const Obj* type = obj(t->items[1]);
    const std::string* key = str(t->items[2]);
    const Value& numel = t->items[4];
    if (!tag || *tag != "storage" || !type || type->kind != ObjKind::Global || !key || numel.kind != Kind::Int)
      fail("unsupported persistent id (expected ('storage', type, key, location, numel))");
    if (key->empty() || key->find('/') != std::string::npos || *key == "." || *key == "..")
      fail("invalid storage key '" + *key + "'");
    const std::string key_text = *key, type_name = type->text;  // make() below may move objs
    for (const auto& st : kStorageTypes) {
      if (type_name != st.name) continue;
      if (numel.i < 0 || uint64_t(numel.i) > (uint64_t(1) << 62) / dtype_size(st.dtype))
        fail("storage '" + key_text + "' has invalid element count " + std::to_string(numel.i));
      const int64_t n = numel.i;
      Value v = make(ObjKind::Storage);
      g_.objs[v.ref].index = int64_t(g_.storages.size());
      g_.storages.push_back(StorageRef{key_text, type_name, st.dtype, n});
      return v;
    }
    // Complex or quantized storages: the tensors built on them are skipped as opaque.
    return make(ObjKind::Object, type_name);
  }

  bool int_tuple(const Value& v, std::vector<int64_t>& out) {
    const Obj* o = obj(v);
    if (!o || (o->kind != ObjKind::Tuple && o->kind != ObjKind::List)) return false;
    out.clear();
    for (const Value& x : o->items) {
      if (x.kind != Kind::Int) return false;
      out.push_back(x.i);
    }
    return true;
  }

  // _rebuild_tensor / _rebuild_tensor_v2 (storage, offset, size, stride, ...) take the storage's dtype;
  // _rebuild_tensor_v3 (..., requires_grad, hooks, dtype[, metadata]) views an untyped storage as `dtype`.
  Value rebuild_tensor(const std::vector<Value>& a, bool v3) {
    if (a.size() < (v3 ? 7u : 4u)) fail("_rebuild_tensor with " + std::to_string(a.size()) + " arguments");
    const Obj* so = obj(a[0]);
    if (!so || so->kind != ObjKind::Storage) return make(ObjKind::Object, "tensor on an unsupported storage");
    const StorageRef& st = g_.storages[size_t(so->index)];
    TensorRef t;
    t.storage = uint32_t(so->index);
    t.dtype = st.dtype;
    if (v3) {
      const Obj* d = obj(a[6]);
      const DType* dt = d && d->kind == ObjKind::Global ? torch_dtype(d->text) : nullptr;
      if (!dt) return make(ObjKind::Object, "tensor of an unsupported dtype");
      t.dtype = *dt;
    }
    // Capacity in elements of the tensor's own dtype.
    const int64_t capacity = st.numel * int64_t(dtype_size(st.dtype)) / int64_t(dtype_size(t.dtype));
    if (a[1].kind != Kind::Int || !int_tuple(a[2], t.size) || !int_tuple(a[3], t.stride))
      fail("malformed tensor arguments (offset, size, stride)");
    t.offset = a[1].i;
    if (t.size.size() != t.stride.size()) fail("tensor size and stride have different lengths");
    if (int(t.size.size()) > kMaxDims) fail("tensor has more than " + std::to_string(kMaxDims) + " dimensions");
    if (t.offset < 0) fail("negative tensor storage offset");
    // numel and the furthest element reached, both overflow-checked against the limits.
    int64_t numel = 1, last = t.offset;
    for (size_t d = 0; d < t.size.size(); ++d) {
      const int64_t n = t.size[d], s = t.stride[d];
      if (n < 0 || s < 0) fail("negative tensor size or stride");
      if (n == 0) {
        numel = 0;
        continue;
      }
      if (numel > lim_.max_tensor_elements / n) numel = lim_.max_tensor_elements + 1;
      else numel *= n;
      if (s != 0 && n - 1 > (INT64_MAX - last) / s) fail("tensor extent overflows");
      last += (n - 1) * s;
    }
    if (numel > lim_.max_tensor_elements)
      fail("tensor has more than " + std::to_string(lim_.max_tensor_elements) + " elements");
    if (numel > 0 && last >= capacity)
      fail("tensor (offset " + std::to_string(t.offset) + ", " + std::to_string(numel) + " elements) reaches element " +
           std::to_string(last) + " of storage '" + st.key + "' which holds only " + std::to_string(capacity));
    t.numel = numel;
    if (int64_t(g_.tensors.size()) >= lim_.max_tensors)
      fail("more than " + std::to_string(lim_.max_tensors) + " tensors");
    Value v = make(ObjKind::Tensor);
    g_.objs[v.ref].index = int64_t(g_.tensors.size());
    g_.tensors.push_back(std::move(t));
    return v;
  }

  Value call(const Value& fn, const Value& args, int nesting = 0) {
    const Obj* f = obj(fn);
    const Obj* ao = obj(args);
    if (!f || f->kind != ObjKind::Global) return make(ObjKind::Object, "result of calling a non-class");
    const std::string name = f->text;  // a copy: make() may move objs
    if (!ao || ao->kind != ObjKind::Tuple) return make(ObjKind::Object, name);
    const std::vector<Value> a = ao->items;  // copy: make() may reallocate objs
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor")
      return rebuild_tensor(a, false);
    if (name == "torch._utils._rebuild_tensor_v3") return rebuild_tensor(a, true);
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state")
      return a.empty() ? make(ObjKind::Object, name) : a[0];
    if (name == "torch._tensor._rebuild_from_type_v2" || name == "torch._tensor._rebuild_from_type") {
      // (func, subclass, args, state): the subclass is dropped, the plain tensor kept.
      if (a.size() < 3 || nesting >= kMaxCallNesting) return make(ObjKind::Object, name);
      return call(a[0], a[2], nesting + 1);
    }
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      Value d = make(ObjKind::Dict);
      if (a.empty()) return d;
      const Obj* src = obj(a[0]);
      if (a.size() != 1 || !src || (src->kind != ObjKind::List && src->kind != ObjKind::Tuple))
        return make(ObjKind::Object, name);
      std::vector<Value> kv;
      for (const Value& pair : src->items) {
        const Obj* p = obj(pair);
        if (!p || (p->kind != ObjKind::Tuple && p->kind != ObjKind::List) || p->items.size() != 2)
          return make(ObjKind::Object, name);
        kv.push_back(p->items[0]);
        kv.push_back(p->items[1]);
      }
      g_.objs[d.ref].kv = std::move(kv);
      return d;
    }
    if (name == "torch.Size" && a.size() == 1) {
      const Obj* src = obj(a[0]);
      if (src && (src->kind == ObjKind::Tuple || src->kind == ObjKind::List)) {
        std::vector<Value> items = src->items;
        return sequence(ObjKind::Tuple, std::move(items));
      }
    }
    if (name == "builtins.set" || name == "builtins.frozenset") return make(ObjKind::Set);
    return make(ObjKind::Object, name);
  }

  // ---- the opcode table ----
  void step(uint8_t op) {
    switch (op) {
      case '(':  // MARK
        if (int64_t(marks_.size()) >= lim_.max_nesting_depth)
          fail("nesting deeper than " + std::to_string(lim_.max_nesting_depth) + " levels");
        marks_.push_back(stack_.size());
        break;
      case '0':  // POP: the top item, or the whole frame when it is empty (as CPython does)
        if (stack_.size() > frame()) stack_.pop_back();
        else pop_mark();
        break;
      case '1':
        pop_mark();
        break;  // POP_MARK
      case '2':
        push(top());
        break;  // DUP
      case 'N':
        push(Value{});
        break;
      case 0x88:
        push(boolean(true));
        break;
      case 0x89:
        push(boolean(false));
        break;
      case 'J':
        push(integer(int32_t(uint32_t(le(4)))));
        break;  // BININT
      case 'K':
        push(integer(u8()));
        break;  // BININT1
      case 'M':
        push(integer(int64_t(le(2))));
        break;  // BININT2
      case 0x8a:
        long_int(u8());
        break;      // LONG1
      case 0x8b: {  // LONG4
        const int32_t n = int32_t(uint32_t(le(4)));
        if (n < 0) fail("negative LONG4 length");
        long_int(uint64_t(n));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        Value v;
        v.kind = Kind::Float;
        v.f = std::bit_cast<double>(bits);
        push(v);
        break;
      }
      case 'X':
        push(make(ObjKind::Str, std::string(bytes(le(4)))));
        break;  // BINUNICODE
      case 0x8c:
        push(make(ObjKind::Str, std::string(bytes(u8()))));
        break;  // SHORT_BINUNICODE
      case 0x8d:
        push(make(ObjKind::Str, std::string(bytes(le(8)))));
        break;     // BINUNICODE8
      case 'T': {  // BINSTRING (Python 2 str)
        const int32_t n = int32_t(uint32_t(le(4)));
        if (n < 0) fail("negative BINSTRING length");
        push(make(ObjKind::Str, std::string(bytes(uint64_t(n)))));
        break;
      }
      case 'U':
        push(make(ObjKind::Str, std::string(bytes(u8()))));
        break;  // SHORT_BINSTRING
      case 'B':
        bytes(le(4));
        push(make(ObjKind::Bytes));
        break;  // BINBYTES
      case 'C':
        bytes(u8());
        push(make(ObjKind::Bytes));
        break;    // SHORT_BINBYTES
      case 0x8e:  // BINBYTES8
      case 0x96:  // BYTEARRAY8
        bytes(le(8));
        push(make(ObjKind::Bytes));
        break;
      case ']':
        push(make(ObjKind::List));
        break;
      case '}':
        push(make(ObjKind::Dict));
        break;
      case ')':
        push(make(ObjKind::Tuple));
        break;
      case 0x8f:
        push(make(ObjKind::Set));
        break;  // EMPTY_SET
      case 'l':
        push(sequence(ObjKind::List, pop_mark()));
        break;
      case 't':
        push(sequence(ObjKind::Tuple, pop_mark()));
        break;
      case 0x91:
        push(sequence(ObjKind::Set, pop_mark()));
        break;  // FROZENSET
      case 'd': {
        std::vector<Value> items = pop_mark();
        Value d = make(ObjKind::Dict);
        setitems(d, items.data(), items.size());
        push(d);
        break;
      }
      case 0x85:  // TUPLE1..3
      case 0x86:
      case 0x87: {
        const size_t n = op - 0x84u;
        if (stack_.size() < frame() + n) fail("stack underflow");
        std::vector<Value> items(stack_.end() - std::ptrdiff_t(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(sequence(ObjKind::Tuple, std::move(items)));
        break;
      }
      case 'a': {  // APPEND
        const Value v = pop();
        append(top(), &v, 1);
        break;
      }
      case 'e': {  // APPENDS
        const std::vector<Value> items = pop_mark();
        append(top(), items.data(), items.size());
        break;
      }
      case 0x90: {  // ADDITEMS
        const std::vector<Value> items = pop_mark();
        append(top(), items.data(), items.size());
        break;
      }
      case 's': {  // SETITEM
        const Value v = pop();
        const Value k = pop();
        const Value kv[2] = {k, v};
        setitems(top(), kv, 2);
        break;
      }
      case 'u': {  // SETITEMS
        const std::vector<Value> items = pop_mark();
        setitems(top(), items.data(), items.size());
        break;
      }
      case 'h':
        memo_get(u8());
        break;  // BINGET
      case 'j':
        memo_get(le(4));
        break;  // LONG_BINGET
      case 'q':
        memo_put(u8());
        break;  // BINPUT
      case 'r':
        memo_put(le(4));
        break;  // LONG_BINPUT
      case 0x94:
        memo_put(memo_.size());
        break;     // MEMOIZE
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module(line());
        std::string name(line());
        push(make(ObjKind::Global, module + "." + name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const Value name = pop();
        const Value module = pop();
        const std::string* n = str(name);
        const std::string* m = str(module);
        if (!n || !m) fail("STACK_GLOBAL needs two strings");
        push(make(ObjKind::Global, *m + "." + *n));
        break;
      }
      case 'R': {  // REDUCE
        const Value args = pop();
        const Value fn = pop();
        push(call(fn, args));
        break;
      }
      case 'b':
        pop();
        top();
        break;      // BUILD: instance state is not modelled
      case 0x81: {  // NEWOBJ
        pop();
        const Value cls = pop();
        const Obj* c = obj(cls);
        push(make(ObjKind::Object, c && c->kind == ObjKind::Global ? c->text : "object"));
        break;
      }
      case 0x92: {  // NEWOBJ_EX
        pop();
        pop();
        const Value cls = pop();
        const Obj* c = obj(cls);
        push(make(ObjKind::Object, c && c->kind == ObjKind::Global ? c->text : "object"));
        break;
      }
      case 'o': {  // OBJ
        const std::vector<Value> items = pop_mark();
        if (items.empty()) fail("OBJ without a class");
        const Obj* c = obj(items[0]);
        push(make(ObjKind::Object, c && c->kind == ObjKind::Global ? c->text : "object"));
        break;
      }
      case 'Q':
        push(persistent_load(pop()));
        break;      // BINPERSID
      case 0x80: {  // PROTO
        const uint8_t v = u8();
        if (v > 5) fail("unsupported pickle protocol " + std::to_string(v));
        break;
      }
      case 0x95: {  // FRAME: only a read-ahead hint
        const uint64_t n = le(8);
        if (n > d_.size() - pos_) fail("FRAME extends past the end of the pickle");
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        const std::string shown = op >= 0x20 && op < 0x7f ? std::string(" '") + char(op) + "'" : "";
        fail("unsupported pickle opcode " + std::string(hex) + shown);
      }
    }
  }

  void long_int(uint64_t n) {
    const std::string_view b = bytes(n);
    if (n <= 8) {
      uint64_t v = 0;
      for (size_t i = n; i-- > 0;) v = (v << 8) | uint8_t(b[i]);
      if (n > 0 && n < 8 && (uint8_t(b[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
      push(integer(int64_t(v)));
    } else if (n <= kMaxBigIntBytes) {
      push(make(ObjKind::BigInt, bigint_decimal(b)));
    } else {
      push(make(ObjKind::Object, "int"));
    }
  }

  std::string_view d_;
  size_t pos_ = 0, op_pos_ = 0;
  const std::string& where_;
  const CheckpointLimits& lim_;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
  PickleGraph g_;
};

}  // namespace

PickleGraph run_pickle(std::string_view data, const std::string& where, const CheckpointLimits& limits) {
  return Machine(data, where, limits).run();
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest round-trip digits in scientific form, then laid out by Python's rule:
  // positional when -4 <= exponent < 16, else d.ddde+XX.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(v), std::chars_format::scientific);
  const std::string_view s(buf, size_t(res.ptr - buf));
  const size_t e = s.find('e');
  std::string digits;
  for (char c : s.substr(0, e))
    if (c != '.') digits += c;
  int exp = 0;
  std::from_chars(s.data() + e + 1 + (s[e + 1] == '+'), s.data() + s.size(), exp);
  std::string out = v < 0 ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      if (digits.size() <= size_t(exp) + 1) {
        out += digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
      }
    } else {
      out += "0.";
      out.append(size_t(-exp - 1), '0');
      out += digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1);
    }
    const int a = exp < 0 ? -exp : exp;
    out += 'e';
    out += exp < 0 ? '-' : '+';
    if (a < 10) out += '0';
    out += std::to_string(a);
  }
  return out;
}

}  // namespace wavtok::torch_pickle
