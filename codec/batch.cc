#include "codec/batch.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/file_util.h"
#include "core/settings.h"
#include "dsp/audio_io.h"
#include "io/token_file.h"

namespace wavtok::batch {

namespace fs = std::filesystem;

namespace {

constexpr const char* kManifest = "manifest.jsonl";
constexpr const char* kFailures = "failures.tsv";
constexpr const char* kLock = ".wavtok-batch.lock";

std::string hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", u);
          out += b;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// A flat JSON object: string keys; string, number, true/false/null values (all kept as their text; strings
// unescaped). Enough for manifest lines; anything else throws.
class FlatJson {
 public:
  explicit FlatJson(const std::string& s) : s_(s) {
    ws();
    expect('{');
    ws();
    if (peek() == '}') {
      ++p_;
    } else {
      for (;;) {
        ws();
        std::string k = str();
        ws();
        expect(':');
        ws();
        std::string v;
        if (peek() == '"') {
          v = str();
        } else {
          const size_t b = p_;
          while (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || std::strchr("+-.", s_[p_])))
            ++p_;
          if (p_ == b) fail("value expected");
          v = s_.substr(b, p_ - b);
        }
        kv_[k] = v;
        ws();
        if (peek() == ',') {
          ++p_;
          continue;
        }
        expect('}');
        break;
      }
    }
    ws();
    if (p_ != s_.size()) fail("text after the object");
  }
  bool has(const std::string& k) const { return kv_.count(k) != 0; }
  std::string get(const std::string& k) const {
    auto it = kv_.find(k);
    if (it == kv_.end()) throw Error("manifest record without \"" + k + "\"");
    return it->second;
  }
  int64_t i64(const std::string& k) const { return std::stoll(get(k)); }
  double num(const std::string& k) const { return std::stod(get(k)); }
  bool boolean(const std::string& k) const {
    const std::string v = get(k);
    if (v != "true" && v != "false") throw Error("manifest record: \"" + k + "\" is not true/false");
    return v == "true";
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw Error(std::string("manifest record: ") + what + " at column " + std::to_string(p_ + 1));
  }
  char peek() const { return p_ < s_.size() ? s_[p_] : '\0'; }
  void ws() {
    while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
  }
  void expect(char c) {
    if (peek() != c) fail((std::string("'") + c + "' expected").c_str());
    ++p_;
  }
  static void utf8(std::string& o, unsigned cp) {
    if (cp < 0x80) {
      o += char(cp);
    } else if (cp < 0x800) {
      o += char(0xC0 | (cp >> 6));
      o += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      o += char(0xE0 | (cp >> 12));
      o += char(0x80 | ((cp >> 6) & 0x3F));
      o += char(0x80 | (cp & 0x3F));
    } else {
      o += char(0xF0 | (cp >> 18));
      o += char(0x80 | ((cp >> 12) & 0x3F));
      o += char(0x80 | ((cp >> 6) & 0x3F));
      o += char(0x80 | (cp & 0x3F));
    }
  }
  unsigned hex4() {
    if (p_ + 4 > s_.size()) fail("bad \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[p_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string str() {
    expect('"');
    std::string o;
    for (;;) {
      if (p_ >= s_.size()) fail("unterminated string");
      const char c = s_[p_++];
      if (c == '"') return o;
      if (c != '\\') {
        o += c;
        continue;
      }
      if (p_ >= s_.size()) fail("unterminated string");
      const char e = s_[p_++];
      switch (e) {
        case '"':
          o += '"';
          break;
        case '\\':
          o += '\\';
          break;
        case '/':
          o += '/';
          break;
        case 'b':
          o += '\b';
          break;
        case 'f':
          o += '\f';
          break;
        case 'n':
          o += '\n';
          break;
        case 'r':
          o += '\r';
          break;
        case 't':
          o += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && p_ + 6 <= s_.size() && s_[p_] == '\\' && s_[p_ + 1] == 'u') {
            p_ += 2;
            const unsigned lo = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(o, cp);
          break;
        }
        default:
          fail("bad escape");
      }
    }
  }
  const std::string& s_;
  size_t p_ = 0;
  std::map<std::string, std::string> kv_;
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_audio_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  if (ext.empty()) return false;
  ext = lower(ext.substr(1));
  const auto& all = audio_extensions();
  return std::find(all.begin(), all.end(), ext) != all.end();
}

// The path as given, lexically normal, without root and leading "..": where its output goes below OUTDIR.
fs::path mirrored(const fs::path& given) {
  fs::path out;
  for (const auto& part : given.lexically_normal().relative_path()) {
    if (out.empty() && (part == ".." || part == ".")) continue;
    out /= part;
  }
  return out;
}

}  // namespace

std::string to_json(const Record& r) {
  std::string o = "{\"input\":";
  json_string(o, r.input);
  o += ",\"output\":";
  json_string(o, r.output);
  o += r.ok ? ",\"status\":\"ok\"" : ",\"status\":\"failed\"";
  o += ",\"error\":";
  json_string(o, r.error);
  o += ",\"sha256\":";
  json_string(o, r.sha256);
  char b[256];
  std::snprintf(b, sizeof b,
                ",\"bytes\":%lld,\"sample_rate\":%d,\"samples\":%lld,\"samples_promised\":%lld,\"truncated\":%s,"
                "\"duration_s\":%.6f,\"frames\":%lld,\"n_q\":%d,\"fingerprint\":\"%s\"}",
                static_cast<long long>(r.bytes), r.sample_rate, static_cast<long long>(r.samples),
                static_cast<long long>(r.samples_promised), r.truncated() ? "true" : "false", r.duration_s,
                static_cast<long long>(r.frames), r.n_q, hex64(r.fingerprint).c_str());
  o += b;
  return o;
}

Record parse_record(const std::string& line) {
  const FlatJson j(line);
  Record r;
  try {
    r.input = j.get("input");
    r.output = j.get("output");
    const std::string st = j.get("status");
    if (st != "ok" && st != "failed") throw Error("manifest record: status \"" + st + "\"");
    r.ok = st == "ok";
    r.error = j.get("error");
    r.sha256 = j.get("sha256");
    r.bytes = j.i64("bytes");
    r.sample_rate = static_cast<int>(j.i64("sample_rate"));
    r.samples = j.i64("samples");
    r.samples_promised = j.i64("samples_promised");
    r.duration_s = j.num("duration_s");
    r.frames = j.i64("frames");
    r.n_q = static_cast<int>(j.i64("n_q"));
    r.fingerprint = std::stoull(j.get("fingerprint"), nullptr, 16);
  } catch (const std::logic_error& e) {  // stoll & co.
    throw Error(std::string("manifest record: bad number (") + e.what() + ")");
  }
  return r;
}

std::string sha256_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw Error("sha256: libcrypto init failed");
  std::vector<char> buf(1 << 16);
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    const auto n = f.gcount();
    if (n > 0) EVP_DigestUpdate(ctx.get(), buf.data(), size_t(n));
  }
  if (f.bad()) throw Error(path + ": read error while hashing");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

Record tokenize_file(const Model& model, const Job& job, const std::string& outdir, const FileOptions& opts) {
  Record r;
  r.input = job.input;
  r.output = job.output;
  r.fingerprint = model.fingerprint();
  try {
    r.n_q = opts.n_q > 0 ? opts.n_q : model.max_n_q();
    if (r.n_q > model.max_n_q())
      throw Error("n_q " + std::to_string(r.n_q) + " exceeds this model's " + std::to_string(model.max_n_q()) +
                  " codebooks");
    std::error_code ec;
    r.bytes = static_cast<int64_t>(fs::file_size(job.input, ec));
    if (ec) throw Error(job.input + ": " + ec.message());
    r.sha256 = sha256_file(job.input);
    const Audio a = read_audio(job.input, model.sample_rate(), ReadOptions{.strict = opts.strict});
    r.sample_rate = a.file_sample_rate;
    r.samples = a.frames_read;
    r.samples_promised = a.frames_promised;
    r.duration_s = double(a.frames_read) / a.file_sample_rate;
    const Tokens tk = model.encode(a.samples.data(), int64_t(a.samples.size()), r.n_q);
    r.frames = tk.frames;
    const fs::path out = fs::path(outdir) / job.output;
    fs::create_directories(out.parent_path(), ec);
    if (ec) throw Error(out.parent_path().string() + ": cannot create folder: " + ec.message());
    const TokenFile tf{tk, model.fingerprint(), model.sample_rate(), model.hop(), model.config().quantizer.bins};
    write_tokens(out.string(), tf, TokenFormat::Native);
    r.ok = true;
  } catch (const std::exception& e) {
    r.ok = false;
    r.error = e.what();
  }
  return r;
}

const std::vector<std::string>& audio_extensions() {
  static const std::vector<std::string> exts{"wav",  "wave", "flac", "ogg", "oga", "opus", "mp3", "aif",
                                             "aiff", "aifc", "au",   "snd", "caf", "w64",  "rf64"};
  return exts;
}

std::vector<Job> collect_jobs(const std::vector<std::string>& inputs, const std::vector<std::string>& list_files) {
  std::vector<Job> jobs;
  auto add_file = [&](const fs::path& file, const fs::path& rel) {
    jobs.push_back({file.string(), (rel.string() + ".wtt")});
  };
  auto add_list = [&](const std::string& list) {
    std::ifstream f(list);
    if (!f) throw Error(list + ": cannot read the file list: " + std::strerror(errno));
    std::string line;
    for (int n = 1; std::getline(f, line); ++n) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
      size_t b = 0;
      while (b < line.size() && (line[b] == ' ' || line[b] == '\t')) ++b;
      line = line.substr(b);
      if (line.empty() || line[0] == '#') continue;
      if (!fs::is_regular_file(line)) throw Error(list + " line " + std::to_string(n) + ": " + line + ": no such file");
      add_file(line, mirrored(line));
    }
  };
  for (const auto& in : inputs) {
    if (!in.empty() && in[0] == '@') {
      add_list(in.substr(1));
    } else if (fs::is_directory(in)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(
               in, fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied);
           it != fs::recursive_directory_iterator(); ++it)
        if (it->is_regular_file() && has_audio_extension(it->path())) found.push_back(it->path());
      for (const auto& p : found) add_file(p, mirrored(p.lexically_relative(in)));
    } else if (fs::exists(in)) {
      add_file(in, mirrored(in));
    } else {
      throw Error(in + ": no such file or folder");
    }
  }
  for (const auto& l : list_files) add_list(l);
  std::sort(jobs.begin(), jobs.end(),
            [](const Job& a, const Job& b) { return a.output != b.output ? a.output < b.output : a.input < b.input; });
  // The same file named twice is one job; two files that map to one output are an error.
  std::vector<Job> unique;
  for (auto& j : jobs) {
    if (!unique.empty() && unique.back().output == j.output) {
      if (fs::path(unique.back().input).lexically_normal() == fs::path(j.input).lexically_normal() ||
          same_existing_file(unique.back().input, j.input))
        continue;
      throw Error("inputs " + unique.back().input + " and " + j.input + " would both write " + j.output);
    }
    unique.push_back(std::move(j));
  }
  return unique;
}

Manifest Manifest::load(const std::string& outdir) {
  Manifest m;
  std::ifstream f(fs::path(outdir) / kManifest, std::ios::binary);
  if (!f) return m;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    if (f.eof()) {  // no newline: cut short while being written
      ++m.bad_lines_;
      break;
    }
    try {
      m.add(parse_record(line));
    } catch (const Error&) {
      ++m.bad_lines_;
    }
  }
  return m;
}

const Record* Manifest::find(const std::string& input) const {
  auto it = last_.find(input);
  return it == last_.end() ? nullptr : &it->second;
}

Resume resume_state(const Manifest& m, const Job& job, const std::string& outdir, uint64_t fingerprint, int n_q,
                    bool retry_failed) {
  const Record* r = m.find(job.input);
  if (!r || r->output != job.output || r->sha256.empty()) return Resume::Redo;
  if (r->ok && (r->fingerprint != fingerprint || r->n_q != n_q || !fs::is_regular_file(fs::path(outdir) / job.output)))
    return Resume::Redo;
  if (!r->ok && retry_failed) return Resume::Redo;
  std::string now;
  try {
    now = sha256_file(job.input);
  } catch (const Error&) {
    return Resume::Redo;  // the attempt will report it
  }
  if (now != r->sha256) return Resume::Redo;
  return r->ok ? Resume::SkipDone : Resume::SkipFailed;
}

void remove_stale_temporaries(const std::string& outdir) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (auto it = fs::recursive_directory_iterator(outdir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t at = name.rfind(".tmp-");
    if (at != std::string::npos && at + 5 < name.size() &&
        name.find_first_not_of("0123456789", at + 5) == std::string::npos && it->is_regular_file())
      stale.push_back(it->path());
  }
  for (const auto& p : stale) fs::remove(p, ec);
}

Pending pending_jobs(const std::vector<Job>& jobs, const std::string& outdir, uint64_t fingerprint, int n_q,
                     bool retry_failed) {
  const Manifest manifest = Manifest::load(outdir);
  Pending p;
  for (const auto& j : jobs) {
    switch (resume_state(manifest, j, outdir, fingerprint, n_q, retry_failed)) {
      case Resume::SkipDone:
        ++p.skipped_done;
        break;
      case Resume::SkipFailed:
        ++p.skipped_failed;
        break;
      case Resume::Redo:
        p.todo.push_back(j);
        break;
    }
  }
  return p;
}

struct ManifestWriter::Impl {
  std::string outdir;
  int lock_fd = -1;
  std::FILE* f = nullptr;
  std::mutex mu;
  ~Impl() {
    if (f) std::fclose(f);
    if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
  }
};

ManifestWriter::ManifestWriter(const std::string& outdir) : impl_(std::make_unique<Impl>()) {
  impl_->outdir = outdir;
  std::error_code ec;
  fs::create_directories(outdir, ec);
  if (ec || !fs::is_directory(outdir)) throw Error(outdir + ": cannot create the output folder: " + ec.message());
  const std::string lock = (fs::path(outdir) / kLock).string();
  impl_->lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (impl_->lock_fd < 0) throw Error(lock + ": cannot create: " + std::strerror(errno));
  if (::flock(impl_->lock_fd, LOCK_EX | LOCK_NB) != 0)
    throw Error(outdir + ": another batch run is writing into this folder (" + lock + " is locked)");
  // Temporaries of a killed run (token files are written as NAME.tmp-PID and renamed): ours now.
  remove_stale_temporaries(outdir);
  const std::string path = (fs::path(outdir) / kManifest).string();
  impl_->f = std::fopen(path.c_str(), "ab+");
  if (!impl_->f) throw Error(path + ": cannot open for appending: " + std::strerror(errno));
  // A line cut short by a crash gets its own line ended, so the next record starts on a fresh line.
  if (std::fseek(impl_->f, 0, SEEK_END) == 0 && std::ftell(impl_->f) > 0) {
    std::fseek(impl_->f, -1, SEEK_END);
    const int last = std::fgetc(impl_->f);
    std::fseek(impl_->f, 0, SEEK_END);
    if (last != '\n') std::fputc('\n', impl_->f);
  }
  if (std::fflush(impl_->f) != 0) throw Error(path + ": write failed: " + std::strerror(errno));
}

ManifestWriter::~ManifestWriter() = default;

void ManifestWriter::append(const Record& r) {
  const std::string line = to_json(r) + "\n";
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (std::fwrite(line.data(), 1, line.size(), impl_->f) != line.size() || std::fflush(impl_->f) != 0)
    throw Error((fs::path(impl_->outdir) / kManifest).string() + ": write failed: " + std::strerror(errno));
}

size_t write_failures(const std::string& outdir, const Manifest& m) {
  std::string text;
  size_t n = 0;
  for (const auto& [input, r] : m.records()) {
    if (r.ok) continue;
    ++n;
    std::string err = r.error;
    for (char& c : err)
      if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    text += input + "\t" + err + "\n";
  }
  const fs::path path = fs::path(outdir) / kFailures;
  if (n == 0) {
    std::error_code ec;
    fs::remove(path, ec);
    return 0;
  }
  AtomicFile f(path.string());
  if (std::fwrite(text.data(), 1, text.size(), f.file()) != text.size()) throw Error(path.string() + ": write failed");
  f.commit();
  return n;
}

Summary run_batch(std::shared_ptr<const Model> model, const std::vector<Job>& jobs, const std::string& outdir,
                  const RunOptions& opts, const ProgressCallback& on_progress) {
  if (!model) throw Error("run_batch: no model");
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  ManifestWriter writer(outdir);  // locks OUTDIR before the manifest is read
  const int n_q = opts.file.n_q > 0 ? opts.file.n_q : model->max_n_q();
  const Pending pending = pending_jobs(jobs, outdir, model->fingerprint(), n_q, opts.retry_failed);
  Manifest manifest = Manifest::load(outdir);  // kept up to date for failures.tsv

  Summary sum;
  sum.files = jobs.size();
  sum.skipped_done = pending.skipped_done;
  sum.skipped_failed = pending.skipped_failed;
  Progress prog;
  prog.total = jobs.size();
  const std::vector<Job>& todo = pending.todo;
  for (const auto& j : todo) {
    std::error_code ec;
    const auto sz = fs::file_size(j.input, ec);
    prog.bytes_total += ec ? 0 : sz;
  }
  prog.skipped = prog.done = sum.skipped_done + sum.skipped_failed;
  std::mutex mu;  // guards prog, sum, manifest and the callback
  if (on_progress) on_progress(prog, nullptr);

  std::atomic<size_t> next{0};
  std::exception_ptr fatal;
  auto worker = [&] {
    set_num_threads(std::max(1, opts.threads_per_job));
    for (;;) {
      {
        std::lock_guard<std::mutex> lk(mu);
        if (fatal) return;
      }
      const size_t i = next++;
      if (i >= todo.size()) return;
      const Job& j = todo[i];
      Record r = tokenize_file(*model, j, outdir, opts.file);
      try {
        writer.append(r);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!fatal) fatal = std::current_exception();
        return;
      }
      std::lock_guard<std::mutex> lk(mu);
      manifest.add(r);
      ++prog.done;
      prog.bytes_done += uint64_t(std::max<int64_t>(r.bytes, 0));
      if (r.ok) {
        ++prog.ok;
        ++sum.ok;
        prog.audio_s += r.duration_s;
        sum.audio_s += r.duration_s;
      } else {
        ++prog.failed;
        ++sum.failed;
        sum.failures.push_back(r);
      }
      prog.elapsed_s = elapsed();
      if (on_progress) on_progress(prog, &r);
    }
  };
  const int n_workers = std::max(1, std::min<int>(opts.jobs, int(std::max<size_t>(todo.size(), 1))));
  std::vector<std::thread> pool;
  for (int w = 0; w < n_workers; ++w) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (fatal) std::rethrow_exception(fatal);
  write_failures(outdir, manifest);
  std::sort(sum.failures.begin(), sum.failures.end(),
            [](const Record& a, const Record& b) { return a.input < b.input; });
  sum.wall_s = elapsed();
  return sum;
}

}  // namespace wavtok::batch
