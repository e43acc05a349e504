// wavtok._wavtok, the corpus part (issue 22 item 2): the C++ per-file tokenizer of `wavtok batch` (codec/batch.h)
// for Python drivers (wavtok.corpus, wavtok.dask), so that they write the same token files and manifest records.
#include <pybind11/stl.h>

#include "codec/batch.h"
#include "python/bindings/bindings.h"

namespace wavtok::python {

namespace {

py::list jobs_to_list(const std::vector<batch::Job>& jobs) {
  py::list out;
  for (const auto& j : jobs) out.append(py::make_tuple(j.input, j.output));
  return out;
}

std::vector<batch::Job> jobs_from(const std::vector<std::pair<std::string, std::string>>& in) {
  std::vector<batch::Job> jobs;
  jobs.reserve(in.size());
  for (const auto& [input, output] : in) jobs.push_back({input, output});
  return jobs;
}

}  // namespace

void bind_batch(py::module_& m) {
  m.def(
      "batch_jobs",
      [](const std::vector<std::string>& inputs, const std::vector<std::string>& lists) {
        std::vector<batch::Job> jobs;
        {
          py::gil_scoped_release nogil;
          jobs = batch::collect_jobs(inputs, lists);
        }
        return jobs_to_list(jobs);
      },
      py::arg("inputs"), py::arg("lists") = std::vector<std::string>{},
      "Expands files, folders (recursive, audio extensions) and @LIST files into sorted (input, output) pairs, "
      "output relative to OUTDIR: exactly as `wavtok batch` does.");
  m.def(
      "batch_pending",
      [](const std::vector<std::pair<std::string, std::string>>& jobs, const std::string& outdir,
         uint64_t fingerprint, int n_q, bool retry_failed) {
        batch::Pending p;
        {
          py::gil_scoped_release nogil;
          p = batch::pending_jobs(jobs_from(jobs), outdir, fingerprint, n_q, retry_failed);
        }
        return py::make_tuple(jobs_to_list(p.todo), p.skipped_done, p.skipped_failed);
      },
      py::arg("jobs"), py::arg("outdir"), py::arg("fingerprint"), py::arg("n_q"), py::arg("retry_failed") = false,
      "(todo, skipped_done, skipped_failed): the jobs that OUTDIR's manifest does not already cover (same input "
      "sha256, model, n_q and an existing output), as `wavtok batch` resumes.");
  m.def(
      "batch_tokenize_file",
      [](const PyModel& pm, const std::string& input, const std::string& output, const std::string& outdir,
         int n_q, bool strict) {
        batch::Record r;
        {
          py::gil_scoped_release nogil;
          pm.apply_threads();
          r = batch::tokenize_file(*pm.model, batch::Job{input, output}, outdir,
                                   batch::FileOptions{.n_q = n_q, .strict = strict});
        }
        return batch::to_json(r);
      },
      py::arg("model"), py::arg("input"), py::arg("output"), py::arg("outdir"), py::arg("n_q") = 0,
      py::arg("strict") = false,
      "Tokenizes one file into OUTDIR/output (atomically) and returns its manifest record as one JSON line; never "
      "raises for a bad input (the record says status \"failed\" and why). The GIL is released meanwhile.");
  m.def("batch_remove_stale_temporaries", &batch::remove_stale_temporaries, py::arg("outdir"),
        py::call_guard<py::gil_scoped_release>(),
        "Removes the NAME.tmp-PID files that killed writers left below OUTDIR (for the holder of its lock).");
  m.def(
      "batch_write_failures",
      [](const std::string& outdir) { return batch::write_failures(outdir, batch::Manifest::load(outdir)); },
      py::arg("outdir"), py::call_guard<py::gil_scoped_release>(),
      "Rewrites OUTDIR/failures.tsv from the manifest; returns the number of failed inputs.");
  m.def("sha256_file", &batch::sha256_file, py::arg("path"), py::call_guard<py::gil_scoped_release>(),
        "SHA-256 of a file's bytes, lowercase hex.");

  struct Writer {
    std::unique_ptr<batch::ManifestWriter> w;
    batch::ManifestWriter& get() {
      if (!w) throw std::runtime_error("ManifestWriter is closed");
      return *w;
    }
  };
  py::class_<Writer>(m, "ManifestWriter",
                     "Appends records to OUTDIR/manifest.jsonl, each line flushed as it is written; holds OUTDIR's "
                     "lock (a second writer is refused) until close() or the end of a `with` block.")
      .def(py::init([](const std::string& outdir) { return Writer{std::make_unique<batch::ManifestWriter>(outdir)}; }),
           py::arg("outdir"))
      .def(
          "append", [](Writer& w, const std::string& json_line) { w.get().append(batch::parse_record(json_line)); },
          py::arg("json_line"), "Appends one record (a line from batch_tokenize_file; checked, then written).")
      .def("close", [](Writer& w) { w.w.reset(); }, "Closes the manifest and releases OUTDIR's lock.")
      .def("__enter__", [](Writer& w) -> Writer& { return w; }, py::return_value_policy::reference)
      .def("__exit__", [](Writer& w, const py::object&, const py::object&, const py::object&) { w.w.reset(); });
}

}  // namespace wavtok::python
