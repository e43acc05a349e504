// Corpus tokenization: many audio files -> one token file each plus a manifest, resumable after an interruption.
//
// The unit of work is tokenize_file(): one input -> one .wtt file (written atomically) and one Record. It never
// throws for a bad input; the Record says what went wrong. `wavtok batch` (apps/cmd_batch.cc) runs it on a pool of
// threads sharing one Model (run_batch below); the Python package and `python3 -m wavtok.dask` call the same
// functions, so every driver writes the same outputs and the same manifest records.
//
// OUTDIR layout:
//   OUTDIR/<rel>.wtt             tokens of input <rel> (the input's path relative to the folder it was found in,
//                                or as given, with ".wtt" appended: a/b.flac -> OUTDIR/a/b.flac.wtt)
//   OUTDIR/manifest.jsonl        one JSON object per line and per attempt, appended and flushed as each file
//                                finishes (see Record); the last record of an input is its state
//   OUTDIR/failures.tsv          input <TAB> error, for every input whose last record failed (rewritten per run)
//   OUTDIR/.wavtok-batch.lock    held (flock) while a run writes into OUTDIR
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace wavtok::batch {

// One input and where its tokens go.
struct Job {
  std::string input;   // path to read (as found: the folder given + relative path, or as listed)
  std::string output;  // path relative to OUTDIR (<rel>.wtt)
};

struct FileOptions {
  int n_q = 0;          // codebooks (0: all of the model's)
  bool strict = false;  // refuse a truncated file (else it is tokenized as far as it goes, and the record says so)
};

// The manifest record of one attempt at one input. Deterministic: two runs over the same inputs with the same
// model give the same records (no timings, no host names), so drivers and runs can be compared line by line.
struct Record {
  std::string input;
  std::string output;  // relative to OUTDIR
  bool ok = false;
  std::string error;             // why it failed (empty when ok)
  std::string sha256;            // of the input's bytes, lowercase hex (empty when the file could not be read)
  int64_t bytes = 0;             // input size
  int sample_rate = 0;           // the file's own rate
  int64_t samples = 0;           // samples per channel decoded (at the file's rate)
  int64_t samples_promised = 0;  // per the header; > samples when the file is truncated
  double duration_s = 0;         // samples / sample_rate
  int64_t frames = 0;            // token frames
  int n_q = 0;
  uint64_t fingerprint = 0;  // of the model
  bool truncated() const { return samples < samples_promised; }
};

// One JSON object on one line (no newline). parse_record() reads it back; it throws Error for a line that is not
// such an object (a line cut short by a crash, say).
std::string to_json(const Record& r);
Record parse_record(const std::string& line);

// SHA-256 of a file's bytes as lowercase hex (OpenSSL's libcrypto). Throws Error naming the file if unreadable.
std::string sha256_file(const std::string& path);

// Reads `input`, encodes it with `model` and writes OUTDIR/job.output (folders created, written to a temporary file
// and renamed). Never throws for a bad input, a failed write or an encoding error: the Record says ok=false and
// why. Thread-safe for distinct outputs; threads may share the model.
Record tokenize_file(const Model& model, const Job& job, const std::string& outdir, const FileOptions& opts = {});

// Audio file extensions that a folder walk picks up (lowercase, without the dot).
const std::vector<std::string>& audio_extensions();

// Expands inputs into jobs, sorted by output path: a folder gives every file with an audio extension below it
// (recursively; output relative to that folder), "@FILE" or a list file given separately (list_files) gives its
// lines (blank lines and lines starting with '#' skipped; relative paths relative to the working directory), any
// other path is a file taken as is (any extension). A file's output mirrors its path as given, with the root and
// leading "../" dropped. Throws Error for a missing input or list, or for two inputs that map to one output.
std::vector<Job> collect_jobs(const std::vector<std::string>& inputs, const std::vector<std::string>& list_files = {});

// What a manifest says: the last record of each input.
class Manifest {
 public:
  // Reads OUTDIR/manifest.jsonl if present; unreadable lines (a crash's half line) are ignored and counted.
  static Manifest load(const std::string& outdir);
  const Record* find(const std::string& input) const;
  size_t size() const { return last_.size(); }
  size_t bad_lines() const { return bad_lines_; }
  const std::map<std::string, Record>& records() const { return last_; }
  void add(const Record& r) { last_[r.input] = r; }

 private:
  std::map<std::string, Record> last_;
  size_t bad_lines_ = 0;
};

enum class Resume { Redo, SkipDone, SkipFailed };
// Whether an earlier record lets a run skip `job`: it is done when its last record is ok, for this model and n_q,
// its output exists and the input's sha256 still matches (the input's bytes are hashed to check). An earlier
// failure of the same bytes is skipped unless retry_failed. Redo otherwise.
Resume resume_state(const Manifest& m, const Job& job, const std::string& outdir, uint64_t fingerprint, int n_q,
                    bool retry_failed);

// The jobs a run still has to do, by resume_state() against OUTDIR's manifest (loaded here).
struct Pending {
  std::vector<Job> todo;
  size_t skipped_done = 0, skipped_failed = 0;
};
Pending pending_jobs(const std::vector<Job>& jobs, const std::string& outdir, uint64_t fingerprint, int n_q,
                     bool retry_failed);

// Removes the temporaries (NAME.tmp-PID) that a killed process left below OUTDIR. Only for the holder of OUTDIR's
// lock (ManifestWriter), when no file of its run is being written.
void remove_stale_temporaries(const std::string& outdir);

// Appends records to OUTDIR/manifest.jsonl: each line written whole and flushed to the kernel before append()
// returns (a killed process loses no finished record). Thread-safe. Holds OUTDIR's lock file for its lifetime and
// refuses a second writer; removes stale temporaries (*.tmp-PID) that a killed run left in OUTDIR.
class ManifestWriter {
 public:
  explicit ManifestWriter(const std::string& outdir);
  ~ManifestWriter();
  ManifestWriter(const ManifestWriter&) = delete;
  ManifestWriter& operator=(const ManifestWriter&) = delete;
  void append(const Record& r);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rewrites OUTDIR/failures.tsv (atomically) from the manifest: input <TAB> error per failed input; removes it
// when there is none. Returns the number of failures.
size_t write_failures(const std::string& outdir, const Manifest& m);

struct RunOptions {
  FileOptions file;
  int jobs = 1;               // worker threads
  int threads_per_job = 1;    // oneDNN threads in each worker
  bool retry_failed = false;  // redo inputs whose earlier attempt failed
};

struct Progress {
  size_t total = 0, done = 0, ok = 0, failed = 0, skipped = 0;  // files: done = ok + failed + skipped
  uint64_t bytes_total = 0, bytes_done = 0;                     // input bytes of the files to (re)do
  double audio_s = 0;                                           // audio tokenized in this run
  double elapsed_s = 0;
};
using ProgressCallback = std::function<void(const Progress&, const Record* just_done)>;

struct Summary {
  size_t files = 0, ok = 0, failed = 0, skipped_done = 0, skipped_failed = 0;
  double audio_s = 0;  // tokenized in this run
  double wall_s = 0;
  std::vector<Record> failures;  // failed in this run
  double audio_hours_per_hour() const { return wall_s > 0 ? audio_s / wall_s : 0; }
};

// The whole run: resume check, a pool of opts.jobs threads over one model, manifest and failures list. Calls
// on_progress (from worker threads, serialised) after each file and once at the start. Throws only for what
// stops the whole run (OUTDIR cannot be created or locked, the manifest cannot be written).
Summary run_batch(std::shared_ptr<const Model> model, const std::vector<Job>& jobs, const std::string& outdir,
                  const RunOptions& opts, const ProgressCallback& on_progress = {});

}  // namespace wavtok::batch
