#!/usr/bin/python3
"""Train a WavTokenizer-architecture codec (python/wavtok_ref) on the generated data, on CPU.

    /usr/bin/python3 python/train.py --config python/train_config.yaml --run runs/v2 [--resume]

- random 1 s crops from data/train (see python/data/make_dataset.py), batch 8, optionally peak-normalised
  to a random level (data.peak_db)
- init.lsuv: data-dependent init of the SEANet encoder at step 0 (every conv's output zero-mean, unit std
  on real audio; the latents standardised per channel), see lsuv_init_encoder
- losses (python/losses.py): multi-resolution log-mel L1 + multi-resolution STFT (spectral
  convergence + log magnitude) + VQ commitment
- schedule: vq.bypass_steps of autoencoder warm-up without the quantizer; then the codebook is
  k-means initialised from the encoder latents of fresh batches and updated by EMA (inside
  wavtok_ref's VQ); the encoder stays frozen for vq.encoder_freeze_steps (with batches of 600
  frames its latents otherwise drift faster than the codebook can follow and the code usage
  collapses to a few codes; with standardised latents a trainable encoder under upstream's commitment
  weight 1000 collapses too), then trains at optim.encoder_lr_mult x lr; while frozen the encoder runs
  without autograd; codes unused for vq.dead_code_after steps are restarted on current latents
- AdamW, linear warmup then cosine decay, gradient clipping (optim.clip_per_group: encoder and decoder
  separately)
- runs/<name>/last.ckpt every few minutes (model + optimizer + step + RNG states, atomic write);
  training resumes from it automatically (--resume insists that it exists, --restart ignores it); a
  checkpoint written with a different config (any section but run:) is refused unless --allow-config-change
- runs/<name>/log.tsv: losses every log_every steps; stdout the same with steps/s
- runs/<name>/export/: model.ckpt + config.yaml in the release layout (wavtok_ref save_checkpoint)
  every export_minutes, with the mel distance on eval clips in export/eval.json and a couple of
  reconstructions in export/samples/
SIGINT/SIGTERM save last.ckpt before exiting.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
import wave
from typing import Dict, List, Optional

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from wavtok_ref import WavTokenizer  # noqa: E402
from losses import CodecLoss, MelSpectrogram, mel_distance  # noqa: E402


# --------------------------------------------------------------------------- data
def read_wav_int16(path: str) -> np.ndarray:
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def read_filelist(path: str) -> List[str]:
    base = os.path.dirname(os.path.abspath(path))
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip().split("|")[0]
            if line:
                out.append(line if os.path.isabs(line) else os.path.join(base, line))
    return out


class CropSampler:
    """All training audio in memory (int16); random fixed-length crops, clip chosen in proportion to length."""

    def __init__(self, filelist, segment: int, gain_db=(-6.0, 3.0), flip: float = 0.5, peak_db=None):
        # filelist: one path or a list of paths (v6: the espeak-ng/music/noise split and the human-voice split)
        lists = [filelist] if isinstance(filelist, str) else list(filelist)
        self.clips = [read_wav_int16(p) for fl in lists for p in read_filelist(fl)]
        # peak_db (lo, hi): scale each clip so that its peak is at a random level in dBFS (like upstream's
        # sox "norm" augmentation); applied before the gain_db augmentation
        self.peak_db = peak_db
        self.peaks = [max(int(np.abs(c.astype(np.int32)).max()) if len(c) else 1, 1) for c in self.clips]
        if not self.clips:
            raise RuntimeError(f"no audio in {filelist}")
        self.segment = segment
        lens = np.array([max(len(c), segment) for c in self.clips], dtype=np.float64)
        self.p = lens / lens.sum()
        self.seconds = float(sum(len(c) for c in self.clips)) / 24000.0
        self.gain_db = gain_db
        self.flip = flip

    def batch(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        out = np.zeros((n, self.segment), dtype=np.float32)
        idx = rng.choice(len(self.clips), size=n, p=self.p)
        for b, i in enumerate(idx):
            c = self.clips[i]
            if len(c) > self.segment:
                o = int(rng.integers(0, len(c) - self.segment + 1))
                seg = c[o:o + self.segment]
            else:
                seg = c
            g = 10 ** (rng.uniform(*self.gain_db) / 20) / 32768.0
            if self.peak_db is not None:
                g *= 10 ** (rng.uniform(*self.peak_db) / 20) * 32768.0 / self.peaks[i]
            if rng.random() < self.flip:
                g = -g
            out[b, :len(seg)] = seg.astype(np.float32) * g
        np.clip(out, -1.0, 1.0, out=out)
        return torch.from_numpy(out)


# --------------------------------------------------------------------------- VQ helpers
def codebook_module(model: WavTokenizer):
    return model.feature_extractor.quantizer.vq.layers[0]._codebook


@torch.no_grad()
def kmeans_chunked(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> (torch.Tensor, torch.Tensor):
    n = x.shape[0]
    idx = torch.randperm(n, generator=gen)[:k] if n >= k else torch.randint(0, n, (k,), generator=gen)
    means = x[idx].clone()
    x2 = (x * x).sum(1, keepdim=True)
    counts = torch.zeros(k, dtype=torch.long)
    for _ in range(iters):
        d = x2 - 2 * x @ means.t() + (means * means).sum(1)[None]
        assign = d.argmin(1)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(means).index_add_(0, assign, x)
        empty = counts == 0
        new = sums / counts.clamp(min=1)[:, None].to(x.dtype)
        # re-seed empty clusters from random points
        if bool(empty.any()):
            new[empty] = x[torch.randint(0, n, (int(empty.sum()),), generator=gen)]
        means = new
    return means, counts


@torch.no_grad()
def standardize_encoder_output(model: WavTokenizer, sampler: CropSampler, rng: np.random.Generator, cfg: Dict,
                               target: float, log):
    """At initialisation: rescale the encoder's last conv (weight_g, bias) so that every latent channel
    has zero mean and std `target` over frames. A fresh SEANet's latents are a constant offset with a
    ~1e-3 spread, which the decoder can hardly see."""
    conv = model.feature_extractor.encodec.encoder.model[-1].conv.conv
    lat = []
    for _ in range(4):
        z = model.feature_extractor.encoder(sampler.batch(rng, cfg["data"]["batch_size"]).unsqueeze(1))
        lat.append(z.transpose(1, 2).reshape(-1, z.shape[1]))
    x = torch.cat(lat)
    mu, sd = x.mean(0), x.std(0).clamp(min=1e-8)
    scale = target / sd
    conv.weight_g.mul_(scale.view(-1, *([1] * (conv.weight_g.dim() - 1))))
    conv.bias.copy_(scale * (conv.bias - mu))
    log(f"encoder output standardised: channel std {sd.mean():.2e} -> {target}, offset {mu.abs().mean():.2e} -> 0")


@torch.no_grad()
def lsuv_init_encoder(model: WavTokenizer, sampler: CropSampler, rng: np.random.Generator, cfg: Dict,
                      latent_std: float, n_batches: int, log):
    """Data-dependent init (LSUV-like) of the SEANet encoder, at step 0: conv by conv in forward order, rescale
    the weight-norm gain g and shift the bias so that the conv's output on real audio has zero mean per channel
    and unit std overall (the last conv: zero mean and std `latent_std` per channel, i.e. standardised
    latents). With PyTorch's default init and quiet inputs every layer shrinks the signal and the bias takes
    over: a fresh encoder's latents are a constant vector with a ~1e-3 spread that the decoder cannot use."""
    enc = model.feature_extractor.encodec.encoder
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv1d)]
    x = torch.cat([sampler.batch(rng, cfg["data"]["batch_size"]) for _ in range(n_batches)]).unsqueeze(1)
    report = []
    for i, conv in enumerate(convs):
        out = {}
        h = conv.register_forward_hook(lambda m, inp, o: out.__setitem__("y", o.detach()))
        enc(x)
        h.remove()
        y = out["y"]
        mu = y.mean(dim=(0, 2))
        last = i == len(convs) - 1
        sd = (y.std(dim=(0, 2)) / latent_std) if last else (y - mu[None, :, None]).std().expand_as(mu)
        sd = sd.clamp(min=1e-8)
        conv.weight_g.mul_((1.0 / sd).view(-1, *([1] * (conv.weight_g.dim() - 1))))
        conv.bias.copy_((conv.bias - mu) / sd)
        report.append(f"{float(y.std()):.1e}")
    z = enc(x)
    log(f"LSUV init of the encoder on {x.shape[0]} x {x.shape[-1] / 24000:.1f} s: {len(convs)} convs, output std "
        f"before init {' '.join(report)}; latents now channel mean |{float(z.mean(dim=(0, 2)).abs().mean()):.2e}|, "
        f"channel std {float(z.std(dim=(0, 2)).mean()):.3f}")


@torch.no_grad()
def kmeans_init(model: WavTokenizer, sampler: CropSampler, rng: np.random.Generator, cfg: Dict, log):
    cb = codebook_module(model)
    if bool(cb.inited.item()):
        return False
    t0 = time.time()
    was_training = model.training
    model.eval()
    lat = []
    bs = cfg["data"]["batch_size"]
    for _ in range(int(cfg["vq"]["kmeans_batches"])):
        audio = sampler.batch(rng, bs)
        z = model.feature_extractor.encoder(audio.unsqueeze(1))  # (B, D, F)
        lat.append(z.transpose(1, 2).reshape(-1, z.shape[1]))
    x = torch.cat(lat)
    gen = torch.Generator().manual_seed(int(cfg["run"]["seed"]))
    means, counts = kmeans_chunked(x, cb.codebook_size, int(cfg["vq"]["kmeans_iters"]), gen)
    per_batch = counts.to(torch.float32) * (x.shape[0] / len(lat)) / x.shape[0]  # expected uses per batch
    cb.embed.copy_(means)
    cb.cluster_size.copy_(per_batch)
    cb.embed_avg.copy_(means * per_batch[:, None])
    cb.inited.fill_(1.0)
    model.train(was_training)
    log(f"k-means init of the codebook from {x.shape[0]} latents ({len(lat)} batches): "
        f"{int((counts > 0).sum())}/{cb.codebook_size} clusters used, {time.time() - t0:.1f} s")
    return True


@torch.no_grad()
@torch.no_grad()
def fold_pos_net_group_norms(src: WavTokenizer, dst: WavTokenizer, clips: List[np.ndarray], log) -> None:
    """dst's ChannelAffine layers (pos_net_norm "affine") from src's GroupNorms with fixed statistics.

    Each GroupNorm's per-group mean and variance, averaged over whole clips (the statistics a one-shot decode of
    a clip uses), are folded into its affine: y = x * w / sqrt(var + eps) + (b - mean * w / sqrt(var + eps)).
    The result decodes like src up to the clip-to-clip variation of the statistics (python/TRAINING.md, v5)."""
    gns = {n: m for n, m in src.backbone.pos_net.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    sums = {n: [0.0, 0.0] for n in gns}
    hooks = []
    for n, m in gns.items():
        def rec(mod, inp, out, n=n):
            g = inp[0].reshape(inp[0].shape[0], mod.num_groups, -1)
            sums[n][0] = sums[n][0] + g.mean(-1)[0].double()
            sums[n][1] = sums[n][1] + g.var(-1, unbiased=False)[0].double()
        hooks.append(m.register_forward_hook(rec))
    hop = src.hop_length
    for c in clips:
        x = torch.from_numpy(c[: (len(c) // hop) * hop].astype(np.float32) / 32768.0)[None]
        feats, _, _ = src.encode(x)
        src.backbone(feats, bandwidth_id=torch.tensor([0]))
    for h in hooks:
        h.remove()
    dst_mods = dict(dst.backbone.pos_net.named_modules())
    for n, m in gns.items():
        mu, var = (v / len(clips) for v in sums[n])
        per_ch = m.num_channels // m.num_groups
        inv = (1.0 / torch.sqrt(var + m.eps)).repeat_interleave(per_ch).float()
        mu = mu.repeat_interleave(per_ch).float()
        d = dst_mods[n]
        d.weight.copy_(m.weight * inv)
        d.bias.copy_(m.bias - mu * m.weight * inv)
    log(f"pos_net GroupNorms folded into per-channel affines with statistics of {len(clips)} clips")


def resample_istft_head(weight: torch.Tensor, bias: torch.Tensor, src_cfg, dst_cfg):
    """The head's Linear (dim -> n_fft + 2: log-magnitudes then phases) of an n_fft_src model, for n_fft_dst =
    n_fft_src / r (r an integer): bin k of the new spectrum is bin r * k of the old (the same frequency k / n_dst);
    a frame of n_dst samples carries n_dst / n_src of the energy of the same signal (log(n_dst / n_src) added to
    the log-magnitudes), and starts pad_src - pad_dst samples later (the 'same' padding trims (n_fft - hop) / 2),
    which advances the phase of frequency k / n_dst by 2 pi k (pad_src - pad_dst) / n_dst. An initialisation only:
    the windows differ, so the head is then trained."""
    ns, nd = int(src_cfg.n_fft), int(dst_cfg.n_fft)
    if ns % nd:
        raise SystemExit(f"--init-wtk: cannot resample an n_fft {ns} head to n_fft {nd} (not an integer ratio)")
    r, bs, bd = ns // nd, ns // 2 + 1, nd // 2 + 1
    rows = torch.arange(bd) * r
    shift = ((ns - int(src_cfg.hop_length)) // 2) - ((nd - int(dst_cfg.hop_length)) // 2)
    w = torch.cat([weight[rows], weight[bs + rows]], 0).clone()
    b = torch.cat([bias[rows] + math.log(nd / ns),
                   bias[bs + rows] + 2 * math.pi * torch.arange(bd, dtype=bias.dtype) * shift / nd], 0).clone()
    return w, b


def restart_dead_codes(model: WavTokenizer, latents: torch.Tensor, dead: torch.Tensor,
                       gen: torch.Generator) -> int:
    """Move the codes flagged in `dead` onto random latents of the current batch (plus a little noise),
    with an EMA state (cluster_size, embed_avg) that keeps them there until they are used."""
    cb = codebook_module(model)
    n = int(dead.sum())
    if n == 0:
        return 0
    x = latents.detach().transpose(1, 2).reshape(-1, latents.shape[1])
    pick = x[torch.randint(0, x.shape[0], (n,), generator=gen)]
    pick = pick + 0.05 * x.std(0, keepdim=True) * torch.randn(pick.shape, generator=gen)
    c0 = float(x.shape[0]) / cb.codebook_size  # the mean per-batch count of a uniformly used code
    cb.embed[dead] = pick
    cb.cluster_size[dead] = c0
    cb.embed_avg[dead] = pick * c0
    return n


# --------------------------------------------------------------------------- schedule / checkpoint
def lr_at(step: int, o: Dict) -> float:
    base = float(o["lr"])
    w = int(o.get("warmup_steps", 0))
    if step < w:
        return base * (step + 1) / w
    total = max(int(o["max_steps"]) - w, 1)
    p = min(1.0, (step - w) / total)
    lo = float(o.get("min_lr_ratio", 0.0))
    return base * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p)))


def atomic_save(obj, path: str):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def inference_bytes(model: WavTokenizer) -> int:
    return sum(v.numel() * v.element_size() for k, v in model.inference_state_dict().items()
               if not k.startswith("feature_extractor.encodec.decoder."))


# --------------------------------------------------------------------------- eval / export
@torch.no_grad()
def evaluate(model: WavTokenizer, files: List[str], mel: MelSpectrogram, sample_dir: Optional[str],
             n_samples: int) -> Dict:
    was = model.training
    model.eval()
    dists, used = [], set()
    for i, p in enumerate(files):
        x = torch.from_numpy(read_wav_int16(p).astype(np.float32) / 32768.0)[None]
        hop = model.hop_length
        x = x[:, : (x.shape[1] // hop) * hop]
        feats, codes, _ = model.encode(x)
        y = model.decode(feats, 0)
        dists.append(mel_distance(y, x, mel))
        used.update(codes.flatten().tolist())
        if sample_dir and i < n_samples:
            os.makedirs(sample_dir, exist_ok=True)
            for tag, sig in (("orig", x), ("recon", y)):
                s = np.clip(np.round(sig[0].numpy() * 32767), -32768, 32767).astype("<i2")
                with wave.open(os.path.join(sample_dir, f"{i:02d}_{tag}.wav"), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(24000)
                    w.writeframes(s.tobytes())
    model.train(was)
    return {"mel_distance": float(np.mean(dists)) if dists else float("nan"),
            "per_clip": [round(d, 4) for d in dists], "codes_used": len(used)}


def export(model: WavTokenizer, run_dir: str, step: int, eval_files: List[str], mel: MelSpectrogram,
           n_samples: int, log) -> Dict:
    d = os.path.join(run_dir, "export")
    os.makedirs(d, exist_ok=True)
    ck, cy = os.path.join(d, "model.ckpt"), os.path.join(d, "config.yaml")
    model.save_checkpoint(ck + ".tmp", cy + ".tmp", global_step=step)
    os.replace(ck + ".tmp", ck)
    os.replace(cy + ".tmp", cy)
    res = evaluate(model, eval_files, mel, os.path.join(d, "samples"), n_samples)
    res.update(step=step, time=time.strftime("%Y-%m-%d %H:%M:%S"), ckpt_bytes=os.path.getsize(ck))
    with open(os.path.join(d, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(run_dir, "eval.tsv"), "a") as f:
        f.write(f"{step}\t{res['mel_distance']:.4f}\t{res['codes_used']}\n")
    log(f"export step {step} -> {d}: eval mel distance {res['mel_distance']:.4f} on {len(eval_files)} clips, "
        f"{res['codes_used']} codes used")
    return res


def config_diff(old: Dict, new: Dict, prefix: str = "") -> List[str]:
    """Differences between two training configs, ignoring the `run` section (threads, logging, timers)."""
    out = []
    for k in sorted(set(old) | set(new)):
        if not prefix and k == "run":
            continue
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, prefix + k + ".")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(HERE, "train_config.yaml"))
    ap.add_argument("--run", default="runs/v2")
    ap.add_argument("--resume", action="store_true", help="require runs/<name>/last.ckpt and resume from it")
    ap.add_argument("--restart", action="store_true", help="ignore an existing last.ckpt (start from scratch)")
    ap.add_argument("--allow-config-change", action="store_true",
                    help="resume a run whose last.ckpt was written with a different config (e.g. to branch an A/B test)")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (total)")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop after this many minutes (this process)")
    ap.add_argument("--branch-from", metavar="CKPT",
                    help="when the run has no last.ckpt yet: start from this checkpoint of another run (weights, optimizer, "
                         "step, RNG states), under this run's config (a recipe stage that continues an earlier one)")
    ap.add_argument("--init-wtk", metavar="MODEL.wtk",
                    help="start a new run from the weights of an exported model (e.g. the shipped default; its codebook "
                         "counts as initialised, no LSUV/k-means), at step --init-step; optimizer moments start fresh")
    ap.add_argument("--init-step", type=int, default=None,
                    help="with --init-wtk: the step the weights were exported at (sets the lr schedule, must be past the warm-up)")
    ap.add_argument("--init-warmup", type=int, default=200,
                    help="with --init-wtk: ramp the lr up linearly over this many steps, since fresh Adam moments make "
                         "the first updates lr-sized for every weight of a trained model (default 200)")
    ap.add_argument("--bench", type=int, default=0, help="time N steps (after k-means) and exit, no files written")
    ap.add_argument("--bench-vq", action="store_true", help="with --bench: k-means init first and time with the VQ")
    args = ap.parse_args()

    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    r = cfg["run"]
    torch.set_num_threads(int(r.get("threads", 1)))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    os.makedirs(args.run, exist_ok=True)
    ckpt_path = os.path.join(args.run, "last.ckpt")
    log_path = os.path.join(args.run, "log.tsv")
    text_log = os.path.join(args.run, "train.log")

    def log(msg: str):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        if not args.bench:
            with open(text_log, "a") as f:
                f.write(line + "\n")

    seed = int(r["seed"])
    torch.manual_seed(seed)
    random.seed(seed)
    rng = np.random.default_rng(seed)
    vq_gen = torch.Generator().manual_seed(seed + 1)

    model = WavTokenizer(**cfg["model"])
    model.train()
    n_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("feature_extractor.encodec.decoder."))
    log(f"model: {n_params / 1e6:.2f} M trained parameters, inference weights {inference_bytes(model) / 1e6:.1f} MB "
        f"(float32, without the unused SEANet decoder), frame rate {model.cfg.frame_rate:.1f}/s, "
        f"{math.log2(model.cfg.codebook_size) * model.cfg.frame_rate * model.cfg.n_q:.0f} bit/s")
    named = [(n, p) for n, p in model.named_parameters()
             if p.requires_grad and not n.startswith("feature_extractor.encodec.decoder.")]
    params = [p for _, p in named]
    o = cfg["optim"]
    enc_mult = float(o.get("encoder_lr_mult", 1.0))
    groups = [{"params": [p for n, p in named if n.startswith("feature_extractor.encodec.encoder.")], "lr_mult": enc_mult, "encoder": True},
              {"params": [p for n, p in named if not n.startswith("feature_extractor.encodec.encoder.")], "lr_mult": 1.0, "encoder": False}]
    opt = torch.optim.AdamW(groups, lr=float(o["lr"]), betas=tuple(o["betas"]), weight_decay=float(o["weight_decay"]))
    loss_fn = CodecLoss(model.cfg.sample_rate, **cfg["loss"])
    eval_mel = MelSpectrogram(model.cfg.sample_rate, 1024, 256, 100)

    d = cfg["data"]
    seg = int(round(float(d["segment_seconds"]) * model.cfg.sample_rate))
    seg = (seg // model.hop_length) * model.hop_length
    t0 = time.time()
    sampler = CropSampler(d["train_filelist"], seg, tuple(d.get("gain_db", (-6.0, 3.0))), float(d.get("flip_polarity", 0.5)),
                          tuple(d["peak_db"]) if d.get("peak_db") else None)
    eval_files = read_filelist(d["eval_filelist"])[: int(r.get("eval_clips", 8))] if os.path.exists(d["eval_filelist"]) else []
    log(f"data: {len(sampler.clips)} clips, {sampler.seconds / 60:.1f} min in {time.time() - t0:.1f} s; "
        f"{len(eval_files)} eval clips")

    step = 0
    last_used = None  # step at which each code was last chosen (dead-code restarts)
    dead_resumed = 0
    rewarm = None  # (first step, length) of the lr ramp after --init-wtk; kept in the checkpoint
    if args.bench:
        cfg["vq"]["bypass_steps"] = 0 if args.bench_vq else 10 ** 9
    branching = bool(args.branch_from) and not os.path.exists(ckpt_path) and not args.restart and not args.bench
    if branching and not os.path.exists(args.branch_from):
        sys.exit(f"--branch-from: {args.branch_from} not found (train the earlier stage first)")
    if (os.path.exists(ckpt_path) or branching) and not args.restart and not args.bench:
        src_path = args.branch_from if branching else ckpt_path
        st = torch.load(src_path, map_location="cpu", weights_only=False)
        diff = config_diff(st.get("config") or {}, cfg)
        if branching:
            log(f"branching from {src_path} at step {int(st['step'])}; config changes: {'; '.join(diff) or 'none'}")
        elif diff and not args.allow_config_change:
            sys.exit(f"{ckpt_path} was trained with a different recipe ({'; '.join(diff[:8])}"
                     f"{' ...' if len(diff) > 8 else ''}).\nRefusing to mix recipes: use a new --run directory, "
                     f"--restart to start this one over, or --allow-config-change to continue it with this config.")
        if diff and not branching:
            log(f"--allow-config-change: continuing {ckpt_path} with a changed config: {'; '.join(diff)}")
        model.load_state_dict(st["model"])
        src_norm = ((st.get("config") or {}).get("model") or {}).get("pos_net_norm", "group")
        if branching and model.cfg.pos_net_norm == "affine" and src_norm == "group":
            src = WavTokenizer(**st["config"]["model"])
            src.load_state_dict(st["model"])
            src.eval()
            fold_pos_net_group_norms(src, model, sampler.clips[: int((cfg.get("init") or {}).get("fold_clips", 80))], log)
        try:
            opt.load_state_dict(st["optimizer"])
        except (KeyError, ValueError) as e:  # e.g. a checkpoint from a different param-group layout
            log(f"optimizer state not restored ({e.__class__.__name__}: {e}); starting with fresh moments")
        step = int(st["step"])
        rng.bit_generator.state = st["np_rng"]
        torch.set_rng_state(st["torch_rng"])
        vq_gen.set_state(st["vq_rng"])
        random.setstate(st["py_rng"])
        last_used = st.get("last_used")
        if branching and cfg["vq"].get("keep_codes_on_init"):  # v6 (see --init-wtk below)
            last_used = torch.full((model.cfg.codebook_size,), step, dtype=torch.long)
        dead_resumed = int(st.get("dead_total", 0))
        rewarm = st.get("rewarm")
        log(f"resumed from {src_path} at step {step}")
    elif args.resume:
        sys.exit(f"--resume: {ckpt_path} not found")
    elif args.init_wtk:
        ini = cfg.get("init") or {}
        bypass = int(cfg["vq"].get("bypass_steps", 0))
        if args.init_step is None or args.init_step <= bypass:
            sys.exit(f"--init-wtk needs --init-step N with N > vq.bypass_steps ({bypass}): the weights are past the warm-up")
        from wtk_io import load_wtk_as_reference
        src = load_wtk_as_reference(args.init_wtk)
        # n_fft may differ (the causal rt model's head is n_fft = 2 * hop): the head is then resampled below.
        # vq.refit_codebook (v7): the codebook may have another size; it is then fitted afresh by k-means on the
        # loaded encoder's latents (the decoder reads code vectors, not indices, so it keeps working).
        refit = bool(cfg["vq"].get("refit_codebook"))
        dims = ("sample_rate", "n_filters", "dimension", "ratios", "n_q", "backbone_dim",
                "intermediate_dim", "num_layers", "hop_length") + (() if refit else ("codebook_size",))
        diff = [f"{k}: {getattr(src.cfg, k)} vs {getattr(model.cfg, k)}" for k in dims
                if list(np.atleast_1d(getattr(src.cfg, k))) != list(np.atleast_1d(getattr(model.cfg, k)))]
        if diff:
            sys.exit(f"{args.init_wtk}: model dims differ from {args.config}: {'; '.join(diff)}")
        src_sd, own = src.state_dict(), model.state_dict()
        src_sd = {k: v for k, v in src_sd.items() if k != "head.istft.window"}  # a buffer of the new n_fft
        if refit:
            src_sd = {k: v for k, v in src_sd.items() if "._codebook." not in k}
            codebook_module(model).inited.fill_(0.0)
        mismatched = [k for k, v in src_sd.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
        if any(not k.startswith("head.") for k in mismatched):
            sys.exit(f"{args.init_wtk}: tensors of other shapes than {args.config}'s: {mismatched[:5]}")
        if mismatched:
            w, b = resample_istft_head(src_sd["head.out.weight"], src_sd["head.out.bias"], src.cfg, model.cfg)
            src_sd["head.out.weight"], src_sd["head.out.bias"] = w, b
            log(f"--init-wtk: iSTFT head resampled from n_fft {src.cfg.n_fft} to {model.cfg.n_fft} "
                f"(every bin {src.cfg.n_fft // model.cfg.n_fft} x k, log-magnitude and phase offsets of the new frame)")
        missing, unexpected = model.load_state_dict(src_sd, strict=False)
        if refit:
            log(f"--init-wtk with vq.refit_codebook: codebook {src.cfg.codebook_size} -> {model.cfg.codebook_size} "
                f"codes, fitted by k-means on the loaded encoder's latents at the first step")
        if unexpected:
            sys.exit(f"{args.init_wtk}: unexpected tensors {unexpected[:5]}")
        if model.cfg.pos_net_norm == "affine" and src.cfg.pos_net_norm == "group":
            fold_pos_net_group_norms(src, model, sampler.clips[: int(ini.get("fold_clips", 80))], log)
        step = args.init_step
        rewarm = (step, max(1, args.init_warmup))
        if cfg["vq"].get("keep_codes_on_init") and not refit:  # v6: every code counts as just used, so the first
            last_used = torch.full((model.cfg.codebook_size,), step, dtype=torch.long)  # dead-code check moves none
        model.train()
        log(f"initialised from {args.init_wtk} at step {step} (fresh optimizer moments)")
    bypass_steps = int(cfg["vq"].get("bypass_steps", 0))
    ini = cfg.get("init") or {}
    if step == 0 and ini.get("lsuv"):
        lsuv_init_encoder(model, sampler, rng, cfg, float(ini.get("latent_std", 1.0)), int(ini.get("batches", 4)), log)
    elif step == 0 and float(cfg["vq"].get("init_latent_std", 0)) > 0:
        standardize_encoder_output(model, sampler, rng, cfg, float(cfg["vq"]["init_latent_std"]), log)

    def start_vq():
        """Latent standardisation + k-means init of the codebook, once (the codebook's `inited` flag)."""
        if bool(codebook_module(model).inited.item()):
            return None
        kmeans_init(model, sampler, rng, cfg, log)
        return torch.full((model.cfg.codebook_size,), step, dtype=torch.long)

    if step >= bypass_steps:
        last_used = start_vq() if last_used is None else last_used

    def save(reason: str):
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                     "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                     "vq_rng": vq_gen.get_state(), "py_rng": random.getstate(), "config": cfg,
                     "last_used": last_used, "dead_total": dead_total, "rewarm": rewarm,
                     "time": time.time()}, ckpt_path)
        log(f"checkpoint step {step} -> {ckpt_path} ({reason})")

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not args.bench and not os.path.exists(log_path):
        with open(log_path, "w") as f:
            f.write("step\twall_s\tlr\tloss\tmel\tsc\tlogmag\tcommit\tgrad_norm\tcodes_in_batch\tdead_restarted\tsteps_per_s\tenv\n")

    bs = int(d["batch_size"])
    vq = cfg["vq"]
    decoder_only = bool(vq.get("decoder_only", False))  # v5: only the backbone and the head train
    log_every = int(r.get("log_every", 10))
    t_start = time.time()
    t_ckpt = t_export = time.time()
    t_win, steps_win = time.time(), 0
    acc: Dict[str, float] = {}
    dead_total = dead_resumed
    max_steps = args.max_steps if args.max_steps is not None else int(o["max_steps"])
    bench_times = []
    while step < max_steps and not stop["flag"]:
        ts = time.time()
        tc = time.process_time()
        lr = lr_at(step, o)
        if rewarm is not None and step >= rewarm[0]:
            lr *= min(1.0, (step - rewarm[0] + 1) / rewarm[1])
        # the encoder is frozen for the first encoder_freeze_steps steps of VQ training (see TRAINING.md)
        enc_frozen = (bypass_steps <= step < bypass_steps + int(vq.get("encoder_freeze_steps", 0))
                      or decoder_only)
        for g in opt.param_groups:
            g["lr"] = lr * (0.0 if enc_frozen and g["encoder"] else g["lr_mult"])
        if step == bypass_steps and not bool(codebook_module(model).inited.item()):
            last_used = start_vq()
        audio = sampler.batch(rng, bs)
        if step < bypass_steps:  # autoencoder warm-up: continuous latents, no quantizer
            latents = model.feature_extractor.encoder(audio.unsqueeze(1))
            features, codes, commit = latents, torch.zeros(1), torch.zeros(1)
        elif decoder_only:  # encoder and codebook fixed (eval mode: no EMA update), so the tokens stay the source's
            model.feature_extractor.eval()
            with torch.no_grad():
                features, codes, commit, latents = model.feature_extractor(audio)
            model.feature_extractor.train()
        elif enc_frozen:  # no graph through the frozen encoder (its commitment gradient would only inflate the
            with torch.no_grad():  # gradient norm that the clipping sees, and its backward costs time)
                features, codes, commit, latents = model.feature_extractor(audio)
        else:
            features, codes, commit, latents = model.feature_extractor(audio)
        audio_hat = model.decode_with_grad(features, 0)
        loss, parts = loss_fn(audio_hat, audio, commit)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o.get("clip_per_group"):  # encoder and decoder clipped separately: the encoder's commitment gradient
            gns = [torch.nn.utils.clip_grad_norm_(g["params"], float(o["grad_clip"]))  # must not scale the
                   for g in opt.param_groups]                                           # decoder's step down
            gn = torch.stack(gns).norm()
        else:
            gn = torch.nn.utils.clip_grad_norm_(params, float(o["grad_clip"]))
        opt.step()
        step += 1
        if step > bypass_steps:
            if last_used is None:  # (also after resuming an older checkpoint): every code counts as unused
                last_used = torch.full((model.cfg.codebook_size,), step - 10 ** 6, dtype=torch.long)
            last_used[codes.flatten().unique()] = step
            if vq.get("dead_code_every") and step % int(vq["dead_code_every"]) == 0 and not decoder_only:
                dead = (step - last_used) > int(vq["dead_code_after"])
                n_dead = restart_dead_codes(model, latents, dead, vq_gen)
                last_used[dead] = step
                dead_total += n_dead
        if not math.isfinite(float(loss)):
            log(f"non-finite loss at step {step}; stopping without saving")
            sys.exit(1)
        parts.update(loss=float(loss), grad_norm=float(gn), codes_in_batch=float(codes.unique().numel()))
        for k, v in parts.items():
            acc[k] = acc.get(k, 0.0) + v
        steps_win += 1
        if args.bench:
            bench_times.append((time.time() - ts, time.process_time() - tc))
            if len(bench_times) >= args.bench:
                tt = np.array(bench_times[2:] if len(bench_times) > 4 else bench_times)
                print(f"bench: {tt[:, 0].mean():.3f} s/step wall, {tt[:, 1].mean():.3f} s/step CPU over {len(tt)} steps, "
                      f"batch {bs} x {seg / 24000:.2f} s, {torch.get_num_threads()} thread(s); last loss {float(loss):.3f} {parts}")
                return
            continue
        if step % log_every == 0:
            now = time.time()
            sps = steps_win / max(now - t_win, 1e-9)
            m = {k: v / steps_win for k, v in acc.items()}
            with open(log_path, "a") as f:
                f.write(f"{step}\t{now - t_start:.1f}\t{lr:.3e}\t{m['loss']:.4f}\t{m['mel']:.4f}\t{m['sc']:.4f}\t"
                        f"{m['logmag']:.4f}\t{m['commit']:.4g}\t{m['grad_norm']:.2f}\t{m['codes_in_batch']:.0f}\t"
                        f"{dead_total}\t{sps:.3f}\t{m.get('env', float('nan')):.4f}\n")
            log(f"step {step} loss {m['loss']:.3f} mel {m['mel']:.3f} sc {m['sc']:.3f} logmag {m['logmag']:.3f} "
                f"commit {m['commit']:.3g} {'env %.3f ' % m['env'] if 'env' in m else ''}gnorm {m['grad_norm']:.1f} codes/batch {m['codes_in_batch']:.0f} "
                f"dead-restarts {dead_total} lr {lr:.2e} {sps:.3f} steps/s")
            acc, steps_win, t_win = {}, 0, now
        if time.time() - t_ckpt > 60 * float(r["checkpoint_minutes"]):
            save("periodic")
            t_ckpt = time.time()
        if time.time() - t_export > 60 * float(r["export_minutes"]) and step > bypass_steps:
            export(model, args.run, step, eval_files, eval_mel, int(r.get("eval_samples", 2)), log)
            t_export = time.time()
        if args.max_minutes is not None and time.time() - t_start > 60 * args.max_minutes:
            break
    if args.bench:
        return
    save("signal" if stop["flag"] else "end")
    if not stop["flag"] and step > bypass_steps:
        export(model, args.run, step, eval_files, eval_mel, int(r.get("eval_samples", 2)), log)


if __name__ == "__main__":
    main()
