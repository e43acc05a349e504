"""wavtok.dask against `wavtok batch`: a LocalCluster of 2 worker processes writes the same token files (byte for
byte), the same manifest records and the same failures list, also when one worker is SIGKILLed mid-run; each
worker loads the model once. Run by CTest (python_dask) with PYTHONPATH=build/python and WAVTOK_CLI set."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import wavtok
import wavtok.corpus as wc
import wavtok.dask as wd

distributed = pytest.importorskip("distributed")

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = os.environ.get("WAVTOK_CLI", os.path.join(HERE, "..", "..", "build", "wavtok"))


def tree(d):
    """relative path -> bytes of every file below d, the lock file and the manifest (completion order) aside."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            if f in (".wavtok-batch.lock", "manifest.jsonl"):
                continue
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def manifest_lines(d):
    with open(os.path.join(d, "manifest.jsonl")) as f:
        return sorted(line for line in f.read().splitlines() if line)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20 short clips from python/make_corpus.py (one of them a corrupt header), an empty file, a truncated WAV,
    and the reference: `wavtok batch` over it."""
    root = tmp_path_factory.mktemp("dask")
    src = str(root / "corpus")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "make_corpus.py"), src, "--files", "20",
                    "--min-s", "0.3", "--max-s", "0.8"], check=True, stdout=subprocess.DEVNULL)
    open(os.path.join(src, "empty.wav"), "wb").close()
    with open(os.path.join(src, "speaker00", "session0", "utt00000.wav"), "rb") as f:
        whole = f.read()
    with open(os.path.join(src, "cut.wav"), "wb") as f:
        f.write(whole[: len(whole) - 2000])
    ref = str(root / "batch")
    r = subprocess.run([CLI, "batch", src, "-o", ref, "-j", "2", "-t", "1"], capture_output=True, text=True)
    assert r.returncode == 3, r.stdout + r.stderr  # completed, with the two bad files failed
    assert "files: 20 ok, 2 failed, 0 skipped" in r.stdout, r.stdout
    return src, ref


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_local_cluster_writes_what_wavtok_batch_writes(corpus, client, tmp_path):
    src, ref = corpus
    out = str(tmp_path / "dask")
    s = wd.run(client, [src], out, shard_size=3, log=None)
    assert (s["ok"], s["failed"], s["skipped_done"]) == (20, 2, 0)
    assert tree(out) == tree(ref)
    assert manifest_lines(out) == manifest_lines(ref)
    failed = {json.loads(l)["input"] for l in manifest_lines(out) if json.loads(l)["status"] == "failed"}
    assert failed == {os.path.join(src, "empty.wav"), os.path.join(src, "speaker07", "session0", "utt00007.wav")}
    loads = client.run(wd.model_loads)
    assert max(loads.values()) == 1 and sum(loads.values()) >= 1, loads  # once per worker process
    # A second run skips everything and appends nothing.
    s = wd.run(client, [src], out, shard_size=3, log=None)
    assert (s["ok"], s["failed"], s["skipped_done"], s["skipped_failed"]) == (0, 0, 20, 2)
    assert len(manifest_lines(out)) == 22


def test_a_killed_worker_loses_no_file(corpus, client, tmp_path):
    src, ref = corpus
    out = str(tmp_path / "killed")
    result = {}

    def drive():
        result["summary"] = wd.run(client, [src], out, shard_size=1, log=None)

    t = threading.Thread(target=drive)
    t.start()
    manifest = os.path.join(out, "manifest.jsonl")
    deadline = time.time() + 120
    seen = 0
    while time.time() < deadline and t.is_alive():
        if os.path.exists(manifest):
            with open(manifest) as f:
                seen = sum(1 for _ in f)
            if seen >= 4:
                break
        time.sleep(0.005)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    t.join(timeout=300)
    assert not t.is_alive()
    assert 4 <= seen < 22, f"killed at {seen} of 22 records: not mid-run"
    s = result["summary"]
    assert (s["ok"], s["failed"]) == (20, 2)
    assert tree(out) == tree(ref)  # every token file, byte for byte, and no temporaries left
    lines = manifest_lines(out)
    assert lines == manifest_lines(ref)  # each input recorded once
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the worker for the next test


def test_command_line_local_cluster_and_resume(corpus, tmp_path):
    src, ref = corpus
    out = str(tmp_path / "cli")
    cmd = [sys.executable, "-m", "wavtok.dask", os.path.join(src, "speaker01"), os.path.join(src, "empty.wav"),
           "-o", out, "--local", "2", "--shard-size", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "files: 1 ok, 1 failed, 0 skipped" in r.stdout, r.stdout
    assert "audio hours per hour" in r.stdout
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "files: 0 ok, 0 failed, 2 skipped (1 done earlier, 1 failed earlier) of 2" in r.stdout, r.stdout
    with open(os.path.join(out, "failures.tsv")) as f:
        assert f.read().startswith(os.path.join(src, "empty.wav") + "\t")


def test_corpus_functions_match_the_cli_and_strict_refuses_truncated(corpus, tmp_path):
    """wavtok.corpus alone (no cluster): the same record as `wavtok batch` for a file, and strict=True refuses the
    truncated file with both sample counts in the error, writing no token file."""
    src, ref = corpus
    out = str(tmp_path / "corpus")
    model = wavtok.Model()
    jobs = dict(wc.jobs([src]))
    cut = os.path.join(src, "cut.wav")
    line = wc.tokenize_file(model, (cut, jobs[cut]), out)
    assert line in manifest_lines(ref)
    r = wc.record(line)
    assert r["status"] == "ok" and r["truncated"] and r["samples"] < r["samples_promised"]
    bad = wc.record(wc.tokenize_file(model, (cut, jobs[cut] + ".strict"), out, strict=True))
    assert bad["status"] == "failed"
    assert str(r["samples"]) in bad["error"] and str(r["samples_promised"]) in bad["error"], bad["error"]
    assert not os.path.exists(os.path.join(out, jobs[cut] + ".strict"))
    assert r["sha256"] == wc.sha256_file(cut)
