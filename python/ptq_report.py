#!/usr/bin/python3
"""Post-training quantization report: quantizes the default model with every configs/quant/*.yaml recipe,
decodes a held-out set with float and each int8 model, and writes docs/PTQ.md (the part between the
REPORT markers). Speed is measured on a random-weight model at the released dims, all models side by side
in one `wavtok ptq-speed` run on one thread, and on the shipped model's files in a second run."""
import argparse, glob, json, os, re, subprocess, sys, statistics, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ptq_compare import measure_quality, run  # noqa: E402  (the quality metrics, shared with ptq_compare.py)

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="build/wavtok")
ap.add_argument("--out", default="out/ptq")
ap.add_argument("--eval-dir", default="data/eval")
ap.add_argument("--calib-dir", default="data/train")
ap.add_argument("--calib-clips", type=int, default=16)
ap.add_argument("--max-eval", type=int, default=1000)
ap.add_argument("--speed-seconds", type=float, default=10)
ap.add_argument("--speed-repeats", type=int, default=5)
ap.add_argument("--doc", default="docs/PTQ.md")
ap.add_argument("--recipes", default="configs/quant/*.yaml")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
W = os.path.abspath(a.bin)


def float_model():
    found = sorted(glob.glob("codec/default/*.wtk"))
    if found:
        return found[0], found[0]
    ck = "runs/v2/export/model.ckpt"
    if not os.path.exists(ck):
        sys.exit("no default model (codec/default/*.wtk) and no runs/v2/export/model.ckpt")
    out = f"{a.out}/float.wtk"
    run(W, "convert", ck, "--config", "runs/v2/export/config.yaml", "-o", out, "-q")
    return out, ck


t_start = time.time()
fmodel, fsource = float_model()
recipes = sorted(glob.glob(a.recipes))
names = [re.sub(r"\.ya?ml$", "", os.path.basename(r)) for r in recipes]
models = {"float": fmodel}
qlog = {}
for r, n in zip(recipes, names):
    out = f"{a.out}/{n}.wtk"
    qlog[n] = run(W, "quantize", fmodel, "--calib", a.calib_dir, "--max-clips", a.calib_clips, "--recipe", r, "-o", out, "-t", 1)
    models[n] = out

clips = sorted(glob.glob(f"{a.eval_dir}/*.wav"))[: a.max_eval]
if not clips:
    sys.exit(f"{a.eval_dir}: no eval clips")
res = measure_quality(W, clips, models, f"{a.out}/clips", e2e=True)
res["float"]["snr_vs_float"] = [float("inf")] * len(clips)  # the float model against itself

# Speed: released dims, random weights (accuracy is meaningless there; only the arithmetic is timed).
rel = f"{a.out}/released"
os.makedirs(rel, exist_ok=True)
if not os.path.exists(f"{rel}/model.wtk"):
    subprocess.run(["/usr/bin/python3", "-c", f"""
import sys; sys.path.insert(0, 'python')
import torch; torch.manual_seed(0)
from wavtok_ref.model import WavTokenizer
m = WavTokenizer(n_filters=32, dimension=512, ratios=[8,5,4,2], codebook_size=4096, n_q=1, backbone_dim=768,
                 intermediate_dim=2304, num_layers=12, adanorm_num_embeddings=4, n_fft=1280, hop_length=320)
# Random codewords at the latents' scale. Left at the reference's all-zero initial codebook, every frame ties
# between all 4096 codes and the exact re-rank scores every one of them (an artefact no trained model has); and a
# random encoder maps all audio to nearly the same latent, so codewords taken from its latents tie nearly as often.
with torch.no_grad():
    z = m.feature_extractor.encoder(0.1 * torch.randn(1, 1, 24000 * 10))
    cb = m.feature_extractor.quantizer.vq.layers[0]._codebook
    cb.embed.normal_().mul_(float(z.norm(dim=1).mean()) / z.shape[1] ** 0.5)
    cb.embed_avg.copy_(cb.embed); cb.inited.fill_(1.0)
m.save_checkpoint('{rel}/model.ckpt', '{rel}/config.yaml')
"""], check=True)
    run(W, "convert", f"{rel}/model.ckpt", "--config", f"{rel}/config.yaml", "-o", f"{rel}/model.wtk", "-q")
rel_models = [f"{rel}/model.wtk"]
for r, n in zip(recipes, names):
    # Same layer selection, transforms and the W4/W8 search off: the int8 kernels and the per-channel input
    # transform (always applied, identity here) cost the same, and the RepQ/SQ-b searches are slow at these dims.
    fast = f"{rel}/{n}.speed.yaml"
    txt = open(r).read()
    # ln_fold needs a transform; transform channel (depthwise convs) is cheap and required by its rule
    txt = re.sub(r"(?m)^\s*(transform:(?!\s*channel)|ln_fold:).*$", "", txt)
    txt = re.sub(r"(?m)^mixed_avg_bits:.*$", "", txt)
    txt = re.sub(r"(?m)act_range:\s*dualclip", "act_range: minmax", txt)  # same kernels; the clip search is slow
    open(fast, "w").write(txt)
    out = f"{rel}/{n}.wtk"
    run(W, "quantize", f"{rel}/model.wtk", "--calib", a.eval_dir, "--max-clips", 1, "--max-seconds", 2, "--recipe", fast, "-o", out, "-t", 1)
    rel_models.append(out)
sp = json.loads(run(W, "ptq-speed", *rel_models, "--seconds", a.speed_seconds, "--repeats", a.speed_repeats, "-t", 1).strip().splitlines()[-1])
speed = {("float" if i == 0 else names[i - 1]): x for i, x in enumerate(sp["models"])}
# The same on the shipped model: its float file and the quantized files measured above, in one run.
sp_shipped = json.loads(run(W, "ptq-speed", *models.values(), "--seconds", a.speed_seconds, "--repeats",
                            a.speed_repeats, "-t", 1).strip().splitlines()[-1])
speed_shipped = dict(zip(models, sp_shipped["models"]))


def cpu_name():
    """The CPU's model name and whether it has native bf16 (the bf16 recipes run float32 without it)."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown CPU"
    name = re.search(r"model name\s*:\s*(.*)", info)
    flags = re.search(r"flags\s*:\s*(.*)", info)
    f = set(flags.group(1).split()) if flags else set()
    bf16 = "AMX" if "amx_bf16" in f else "AVX512-BF16" if "avx512_bf16" in f else "no native bf16"
    return f"{name.group(1).strip() if name else 'unknown CPU'} ({bf16})"


def qparams(log):
    m = re.search(r"(\d+) int8 layers, (\d+) of (\d+) parameters", log)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)


lines = []
lines.append(f"Float model: `{fsource}`; held-out set: {len(clips)} clips of `{a.eval_dir}` "
             f"({sum(1 for _ in clips)} files); calibration: first {a.calib_clips} clips of `{a.calib_dir}`.")
lines.append(f"Speed: released dims (encoder n_filters 32 / dimension 512, backbone dim 768, intermediate 2304, 12 layers, "
             f"random weights), {sp['seconds']:.1f} s of audio, 1 thread, median of {a.speed_repeats} interleaved rounds, one "
             f"`wavtok ptq-speed` run: decode of random tokens, round trip = encode of noise + that decode. "
             f"Shipped: the same on the float model above and its quantized files, in a second run. CPU: {cpu_name()}.")
lines.append("")
lines.append("| model | int8 layers | tokens = float | re-encode agreement | SI-SNR dB | mel dist | STOI | ΔSTOI | "
             "SI-SNR vs float dec. dB | end-to-end STOI | file MB | decode s (released) | decode speed-up | "
             "round trip s (released) | round-trip speed-up | round trip s (shipped) | round-trip speed-up (shipped) |")
lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
fst = statistics.mean(res["float"]["stoi"])
for m in models:
    r = res[m]
    nl, q8, tot = qparams(qlog.get(m, ""))
    size = os.path.getsize(models[m]) / 1e6
    snr_f = "—" if m == "float" else f"{statistics.mean(r['snr_vs_float']):.2f}"
    lines.append(f"| {m} | {nl if m != 'float' else 0} | {100 * statistics.mean(r['tok']):.2f}% | {100 * statistics.mean(r['reenc']):.2f}% | "
                 f"{statistics.mean(r['si_snr_db']):.3f} | {statistics.mean(r['mel_distance']):.4f} | {statistics.mean(r['stoi']):.4f} | "
                 f"{statistics.mean(r['stoi']) - fst:+.4f} | {snr_f} | {statistics.mean(r['e2e_stoi']):.4f} | {size:.2f} | "
                 f"{speed[m]['decode_s']:.3f} | {speed['float']['decode_s'] / speed[m]['decode_s']:.2f}x | "
                 f"{speed[m]['roundtrip_s']:.3f} | {speed['float']['roundtrip_s'] / speed[m]['roundtrip_s']:.2f}x | "
                 f"{speed_shipped[m]['roundtrip_s']:.4f} | "
                 f"{speed_shipped['float']['roundtrip_s'] / speed_shipped[m]['roundtrip_s']:.2f}x |")
lines.append("")
lines.append(f"Generated by `scripts/ptq_report.sh` in {time.time() - t_start:.0f} s on `{os.uname().nodename}`.")
table = "\n".join(lines)
open(f"{a.out}/report.json", "w").write(json.dumps({"speed": sp, "speed_shipped": sp_shipped, "results": {m: {k: statistics.mean(v) for k, v in r.items()} for m, r in res.items()}}, indent=1, default=str))

doc = open(a.doc).read() if os.path.exists(a.doc) else "<!-- REPORT BEGIN -->\n<!-- REPORT END -->\n"
doc = re.sub(r"<!-- REPORT BEGIN -->.*<!-- REPORT END -->", lambda _: "<!-- REPORT BEGIN -->\n" + table + "\n<!-- REPORT END -->", doc, flags=re.S)
open(a.doc, "w").write(doc)
print(table)
