"""Corpus tokenization from Python: the per-file work of `wavtok batch`, for drivers such as wavtok.dask.

Every function here calls the C++ library (codec/batch.h), so Python drivers write exactly the token files and
manifest records that `wavtok batch` writes::

    import wavtok, wavtok.corpus as wc

    model = wavtok.Model()
    jobs = wc.jobs(["corpus/"])                          # [(input, output relative to OUTDIR), ...]
    with wc.ManifestWriter("tokens/") as w:              # OUTDIR's lock and manifest.jsonl
        todo, done, failed = wc.pending(jobs, "tokens/", model)
        for job in todo:
            w.append(wc.tokenize_file(model, job, "tokens/"))   # one JSON line per file
    wc.write_failures("tokens/")

A record (json.loads of a line) has: input, output, status ("ok" or "failed"), error, sha256 (of the input's
bytes), bytes, sample_rate, samples, samples_promised, truncated, duration_s, frames, n_q, fingerprint.
"""
from __future__ import annotations

import json
from typing import Iterable, List, Optional, Sequence, Tuple

from . import _wavtok

Job = Tuple[str, str]

ManifestWriter = _wavtok.ManifestWriter


def jobs(inputs: Sequence[str], lists: Sequence[str] = ()) -> List[Job]:
    """Files, folders (recursive, audio extensions) and "@LIST" files -> sorted (input, output) pairs."""
    return [tuple(j) for j in _wavtok.batch_jobs(list(inputs), list(lists))]


def pending(all_jobs: Iterable[Job], outdir: str, model, n_q: Optional[int] = None,
            retry_failed: bool = False) -> Tuple[List[Job], int, int]:
    """(todo, skipped_done, skipped_failed) against OUTDIR's manifest, as `wavtok batch` resumes.

    `model` is a wavtok.Model, or a (fingerprint, n_q) pair for a driver that does not load the model."""
    if isinstance(model, tuple):
        fingerprint, max_n_q = model
    else:
        fingerprint, max_n_q = model.fingerprint, model.n_q
    todo, done, failed = _wavtok.batch_pending([tuple(j) for j in all_jobs], outdir, fingerprint,
                                               n_q or max_n_q, retry_failed)
    return [tuple(j) for j in todo], done, failed


def tokenize_file(model, job: Job, outdir: str, n_q: Optional[int] = None, strict: bool = False) -> str:
    """Tokenizes job[0] into OUTDIR/job[1]; returns the manifest record as a JSON line. Never raises for a bad
    input file: the record's status is "failed" and its error says why."""
    return _wavtok.batch_tokenize_file(model, job[0], job[1], outdir, n_q or 0, strict)


def record(line: str) -> dict:
    """A manifest line as a dict."""
    return json.loads(line)


def write_failures(outdir: str) -> int:
    """Rewrites OUTDIR/failures.tsv from the manifest; returns the number of failed inputs."""
    return _wavtok.batch_write_failures(outdir)


def remove_stale_temporaries(outdir: str) -> None:
    """Removes temporaries that killed writers left below OUTDIR (call while holding its ManifestWriter)."""
    _wavtok.batch_remove_stale_temporaries(outdir)


sha256_file = _wavtok.sha256_file
