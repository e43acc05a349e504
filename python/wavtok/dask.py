"""Corpus tokenization on a Dask cluster: `wavtok batch` scaled out over many machines.

    python3 -m wavtok.dask INPUTS... -o OUTDIR --scheduler tcp://HOST:8786   # an existing cluster
    python3 -m wavtok.dask INPUTS... -o OUTDIR --local 4                     # a LocalCluster of 4 processes

The driver (this process) expands the inputs exactly as `wavtok batch` does, skips what OUTDIR's manifest already
covers, and maps shards of the remaining files onto the workers. Each worker process loads the model once (cached
per process) and tokenizes its files with the same C++ function as `wavtok batch` (wavtok.corpus), writing the token
files straight into OUTDIR (which must be the same path on every machine: a shared file system). Workers return
the manifest records; the driver alone appends them to OUTDIR/manifest.jsonl, flushed per shard, so OUTDIR ends
up with the same token files, manifest records and failures.tsv as `wavtok batch` would write.

A worker that dies mid-shard loses nothing: the scheduler runs its unfinished shards again elsewhere (token files
are written atomically, so a half-written one never appears), and a record is appended only when its shard's
result arrives. If the driver itself is killed, rerun the same command: finished files are skipped, as with
`wavtok batch`. See docs/CORPUS.md for a multi-machine run.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from . import corpus

# --- worker side -------------------------------------------------------------------------------------------------

_MODELS: Dict[Tuple[Optional[str], int], object] = {}
_MODELS_LOCK = threading.Lock()
_LOADS = 0  # models loaded by this process (tests check: one per worker)


def _worker_model(model_path: Optional[str], threads: int):
    """The model for (path, threads), loaded once per worker process and kept for its later tasks."""
    global _LOADS
    key = (model_path, threads)
    with _MODELS_LOCK:
        m = _MODELS.get(key)
        if m is None:
            import wavtok
            m = wavtok.Model(model_path) if model_path else wavtok.Model()
            m.threads = threads
            _MODELS[key] = m
            _LOADS += 1
        return m


def model_loads() -> int:
    """How many models this process has loaded (run on workers with client.run)."""
    return _LOADS


def tokenize_shard(shard: Sequence[Tuple[str, str]], outdir: str, model_path: Optional[str], n_q: int,
                   strict: bool, threads: int) -> List[str]:
    """A Dask task: tokenize each (input, output) of the shard; returns their manifest records (JSON lines)."""
    model = _worker_model(model_path, threads)
    return [corpus.tokenize_file(model, tuple(job), outdir, n_q, strict) for job in shard]


# --- driver side -------------------------------------------------------------------------------------------------

def _hms(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{(s // 60) % 60:02d}m{s % 60:02d}s"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def run(client, inputs: Sequence[str], outdir: str, model: Optional[str] = None, n_q: Optional[int] = None,
        strict: bool = False, lists: Sequence[str] = (), shard_size: int = 8, threads: int = 1,
        retry_failed: bool = False, progress: bool = False, log=sys.stderr) -> dict:
    """Tokenizes the inputs on `client`'s cluster into OUTDIR; returns the summary as a dict (files, ok, failed,
    skipped_done, skipped_failed, audio_s, wall_s, audio_hours_per_hour, failures)."""
    import json

    import wavtok
    from distributed import as_completed

    t0 = time.perf_counter()
    outdir = os.path.abspath(outdir)
    all_jobs = corpus.jobs(inputs, lists)
    # The driver loads the model too, for its fingerprint and codebook count (what a resume checks).
    m = wavtok.Model(model) if model else wavtok.Model()
    n_q = n_q or m.n_q
    if n_q > m.n_q:
        raise wavtok.InputError(f"n_q {n_q} exceeds this model's {m.n_q} codebooks")
    model_path = os.path.abspath(model) if model else None
    summary = dict(files=len(all_jobs), ok=0, failed=0, skipped_done=0, skipped_failed=0, audio_s=0.0, failures=[])
    with corpus.ManifestWriter(outdir) as writer:  # OUTDIR's lock first, then the manifest is read
        todo, summary["skipped_done"], summary["skipped_failed"] = corpus.pending(all_jobs, outdir, m, n_q,
                                                                                  retry_failed)
        shards = [todo[i:i + shard_size] for i in range(0, len(todo), max(1, shard_size))]
        if log:
            print(f"wavtok.dask: {len(all_jobs)} input files, {len(todo)} to do in {len(shards)} shards of "
                  f"<= {shard_size}, model {m.fingerprint:016x}, {n_q} codebooks -> {outdir}", file=log, flush=True)
        # By module name, also when this file runs as __main__ (python3 -m wavtok.dask): workers import it.
        from wavtok.dask import tokenize_shard as task
        futures = client.map(task, shards, outdir=outdir, model_path=model_path, n_q=n_q, strict=strict,
                             threads=threads, pure=False)
        done = 0
        for fut in as_completed(futures):
            for line in fut.result():
                writer.append(line)
                r = json.loads(line)
                done += 1
                if r["status"] == "ok":
                    summary["ok"] += 1
                    summary["audio_s"] += r["duration_s"]
                    if r["truncated"] and log:
                        print(f"\rwavtok: warning: {r['input']}: truncated: the header promises "
                              f"{r['samples_promised']} samples (per channel), the file holds {r['samples']}",
                              file=log, flush=True)
                else:
                    summary["failed"] += 1
                    summary["failures"].append(r)
            fut.release()
            if progress and log:
                el = time.perf_counter() - t0
                eta = el * (len(todo) - done) / done if done else float("nan")
                print(f"\r{done}/{len(todo)} files, {summary['failed']} failed, {summary['audio_s'] / 3600:.2f} h "
                      f"audio, ETA {_hms(eta) if done else '?'}   ", end="", file=log, flush=True)
        if progress and log:
            print(file=log)
        # Shards of killed workers may have left temporaries; every shard is finished now.
        corpus.remove_stale_temporaries(outdir)
        corpus.write_failures(outdir)
    summary["failures"].sort(key=lambda r: r["input"])
    summary["wall_s"] = time.perf_counter() - t0
    summary["audio_hours_per_hour"] = summary["audio_s"] / summary["wall_s"] if summary["wall_s"] > 0 else 0.0
    return summary


def print_summary(s: dict, outdir: str, out=sys.stdout) -> None:
    """The closing summary, in `wavtok batch`'s words."""
    for f in s["failures"]:
        print(f"failed: {f['error']}", file=sys.stderr)
    skipped = s["skipped_done"] + s["skipped_failed"]
    print(f"files: {s['ok']} ok, {s['failed']} failed, {skipped} skipped ({s['skipped_done']} done earlier, "
          f"{s['skipped_failed']} failed earlier) of {s['files']}", file=out)
    print(f"audio tokenized: {s['audio_s'] / 3600:.4f} h in {_hms(s['wall_s'])} wall time: "
          f"{s['audio_hours_per_hour']:.1f} audio hours per hour", file=out)
    if s["failed"] + s["skipped_failed"]:
        print(f"failures listed in {outdir}/failures.tsv", file=out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m wavtok.dask", description=__doc__.split("\n\n")[0],
                                 epilog="Exit status: 0 all files ok, 3 the run completed but some files failed, "
                                        "1 an error stopped the run, 2 a usage error.")
    ap.add_argument("inputs", nargs="*", help="audio files, folders (recursive, audio extensions) or @LIST files")
    ap.add_argument("--list", action="append", default=[], help="a file with one input path per line")
    ap.add_argument("-o", "--output", required=True, help="output folder (the same path on every worker)")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler", help="address of a running dask scheduler, e.g. tcp://10.0.0.1:8786")
    where.add_argument("--local", type=int, metavar="N", help="start a LocalCluster of N worker processes")
    ap.add_argument("-m", "--model", help="model: .wtk file or checkpoint, the same path on every worker "
                                          "(default: the shipped model)")
    ap.add_argument("-n", "--n-q", type=int, help="number of codebooks (default: all)")
    ap.add_argument("--strict", action="store_true", help="refuse truncated audio files")
    ap.add_argument("--shard-size", type=int, default=8, help="files per task (default 8)")
    ap.add_argument("-t", "--threads", type=int, default=1, help="oneDNN threads per task (default 1)")
    ap.add_argument("--retry-failed", action="store_true", help="try again inputs that failed in an earlier run")
    ap.add_argument("--progress", action="store_true", help="progress line even when stderr is not a terminal")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    a = ap.parse_args(argv)
    if not a.inputs and not a.list:
        ap.error("give input files, folders, @LIST or --list FILE")
    if a.shard_size < 1 or a.threads < 1 or (a.local is not None and a.local < 1) or (a.n_q is not None and a.n_q < 1):
        ap.error("--shard-size, --threads, --local and --n-q must be >= 1")

    from distributed import Client, LocalCluster

    import wavtok
    cluster = None
    try:
        if a.local is not None:
            cluster = LocalCluster(n_workers=a.local, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(a.scheduler)
        with client:
            s = run(client, a.inputs, a.output, model=a.model, n_q=a.n_q, strict=a.strict, lists=a.list,
                    shard_size=a.shard_size, threads=a.threads, retry_failed=a.retry_failed,
                    progress=not a.quiet and (a.progress or sys.stderr.isatty()), log=None if a.quiet else sys.stderr)
    except wavtok.Error as e:
        print(f"wavtok.dask: error: {e}", file=sys.stderr)
        return 1
    finally:
        if cluster is not None:
            cluster.close()
    if not a.quiet:
        print_summary(s, a.output)
    return 3 if s["failed"] + s["skipped_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
