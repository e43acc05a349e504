#!/usr/bin/python3
"""Speed baseline: the PyTorch reference WavTokenizer (python/wavtok_ref) at the released dims with random
weights, timed for encode, decode and round trip on the same synthetic input as `wavtok bench`.

    /usr/bin/python3 python/bench_reference.py --threads 1 --lengths 1,10 --repeats 3

Prints one JSON object: torch version, the BLAS/LAPACK torch was built with and the BLAS library actually
loaded (from /proc/self/maps), parallel info, and per (threads, length, phase) the median wall time of
`repeats` runs after one warm-up run, the real-time factor (audio seconds / wall seconds, higher is faster)
and the process's peak RSS. Each thread count runs in its own child process (torch.set_num_threads).
The comparison is of speed only: the weights are random (PyTorch default init), not the C++ model's.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RELEASED = dict(n_filters=32, dimension=512, ratios=[8, 5, 4, 2], codebook_size=4096, n_q=1, backbone_dim=768,
                intermediate_dim=2304, num_layers=12, adanorm_num_embeddings=4, n_fft=1280, hop_length=320)


def synthetic_audio(samples: int, rate: int = 24000):
    """Same signal as `wavtok bench` (apps/bench/bench_command.cc: bench_audio): a few partials + a slow vibrato."""
    import numpy as np
    t = np.arange(samples, dtype=np.float64) / rate
    x = (0.2 * np.sin(2 * math.pi * 220.0 * t + 3.0 * np.sin(2 * math.pi * 0.5 * t))
         + 0.1 * np.sin(2 * math.pi * 440.0 * t) + 0.05 * np.sin(2 * math.pi * 1330.0 * t))
    return x.astype(np.float32)


def blas_libraries():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1] if line.split() else ""
                base = os.path.basename(p)
                if any(k in base for k in ("blas", "lapack", "mkl", "blis")):
                    libs.add(os.path.realpath(p))
    except OSError:
        pass
    return sorted(libs)


BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_core():
    """The kernel OpenBLAS chose at load time (openblas_get_corename of the library in this process), or None.

    OPENBLAS_CORETYPE forces one (e.g. Haswell holds it to AVX2 on an AVX-512 CPU), OPENBLAS_L2_SIZE changes its
    blocking; `wavtok bench --baseline` unsets both for this process so the baseline runs the kernel OpenBLAS
    picks for the CPU."""
    import ctypes
    for path in blas_libraries():
        if "openblas" not in os.path.basename(path):
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return None


def build_model(seed: int, keep_weight_norm: bool):
    import torch
    from wavtok_ref import WavTokenizer
    torch.manual_seed(seed)
    model = WavTokenizer(**RELEASED)
    with torch.no_grad():
        for layer in model.feature_extractor.quantizer.vq.layers:
            layer._codebook.embed.normal_()
            layer._codebook.inited.fill_(1.0)
    if not keep_weight_norm:  # fold weight norm once, as the C++ engine does at load time
        for m in model.modules():
            if hasattr(m, "weight_g"):
                torch.nn.utils.remove_weight_norm(m)
    model.eval()
    return model


def run_one_thread_count(args) -> dict:
    import torch
    torch.set_num_threads(args.threads)
    model = build_model(args.seed, args.keep_weight_norm)
    # Touch BLAS so the library shows up in the maps.
    torch.mm(torch.randn(64, 64), torch.randn(64, 64))
    results = []
    for sec in args.lengths:
        samples = int(round(sec * model.sample_rate))
        audio = torch.from_numpy(synthetic_audio(samples, model.sample_rate))[None]
        with torch.inference_mode():
            features, codes, _ = model.encode(audio)

            def encode():
                return model.encode(audio)

            def decode():
                return model.decode(model.codes_to_features(codes), bandwidth_id=0)

            def roundtrip():
                f, c, _ = model.encode(audio)
                return model.decode(f, bandwidth_id=0)

            for phase, fn in (("encode", encode), ("decode", decode), ("roundtrip", roundtrip)):
                if phase not in args.phases:
                    continue
                t0 = time.perf_counter()
                fn()  # warm-up
                first = time.perf_counter() - t0
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                results.append(dict(phase=phase, seconds=sec, threads=args.threads, median_s=med, min_s=min(times),
                                    first_s=first, xrt=sec / med, repeats=args.repeats,
                                    peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
                print(f"[reference] {phase:9s} {sec:6.1f} s  {args.threads} thr  {med:8.3f} s  {sec / med:6.2f}x RT",
                      file=sys.stderr, flush=True)
    return dict(results=results, blas_loaded=blas_libraries(), openblas_core=openblas_core(),
                blas_env={k: os.environ.get(k) for k in BLAS_ENV},
                parallel_info=torch.__config__.parallel_info())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1", help="comma-separated thread counts (each in its own process)")
    ap.add_argument("--lengths", default="1,10,60", help="comma-separated input lengths in seconds")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--phases", default="encode,decode,roundtrip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-weight-norm", action="store_true",
                    help="keep the weight-norm reparametrisation (recomputed every forward), as training code runs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.lengths = [float(x) for x in str(args.lengths).split(",") if x]
    args.phases = [x for x in str(args.phases).split(",") if x]

    if args.child:
        args.threads = int(args.threads)
        print(json.dumps(run_one_thread_count(args)))
        return

    import torch
    cfg = torch.__config__.show()
    import re
    info = {k.lower(): v for k, v in re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=([^,\s]+)", cfg)}
    out = dict(torch=torch.__version__, build_blas=info.get("blas_info", "?"), build_lapack=info.get("lapack_info", "?"),
               cpu_capability=next((l.split(":", 1)[1].strip() for l in cfg.splitlines() if "CPU capability" in l), "?"),
               weight_norm_folded=not args.keep_weight_norm, dims=RELEASED, results=[], flat={})
    for thr in [int(x) for x in str(args.threads).split(",") if x]:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--threads", str(thr),
               "--lengths", ",".join(str(x) for x in args.lengths), "--repeats", str(args.repeats),
               "--phases", ",".join(args.phases), "--seed", str(args.seed)]
        if args.keep_weight_norm:
            cmd.append("--keep-weight-norm")
        env = dict(os.environ, OMP_NUM_THREADS=str(thr))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, check=True, text=True)
        child = json.loads(r.stdout)
        out["results"] += child["results"]
        out["blas_loaded"] = child["blas_loaded"]
        out["openblas_core"] = child["openblas_core"]
        out["blas_env"] = child["blas_env"]
        env_text = ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in child["blas_env"].items())
        print(f"[reference] OpenBLAS kernel: {child['openblas_core']} ({env_text})", file=sys.stderr, flush=True)
        out.setdefault("parallel_info", {})[str(thr)] = child["parallel_info"]
    for r in out["results"]:
        # flat "phase@seconds@threads": median seconds (easy to read from C++ without a JSON library)
        out["flat"][f"{r['phase']}@{r['seconds']:g}@{r['threads']}"] = r["median_s"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
