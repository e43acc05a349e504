#!/usr/bin/env python3
"""The engine runs a QAT-exported model as the fake-quant reference does (issue 24: tokens >= 99.5 %).

A tiny random WavTokenizer (n_filters 8, dimension 32, 16 codes drawn from its own latents; LSUV-initialised as
train.py does, so every conv sees unit-scale inputs; the LSTM's recurrent weights halved) is converted to a float
.wtk by `wavtok convert`, loaded into python/qat.py's fake-quant encoder (18 int8 SEANet convs + the int8 LSTM),
its ranges calibrated, then its weights and learned-scale parameters perturbed (as a fine-tune would leave them:
weights by 2 %, scales off their min-max values by up to +-25 %), exported with qat.export_wtk into a version-2
.wtk and run by `wavtok encode` on 8 s of a synthetic voiced signal (600 frames). The reference is the fake-quant
encoder in the engine's arithmetic (qat.set_engine_exact: integer accumulation, the engine's bias folding and
ELU, float64 LSTM gates on u8/s8 codes).

The same again for a mixed export (`qat.py train --float-convs model.0,model.1,model.3`): the first five convs stay
float (fine-tuned, weight norm folded on export), 13 int8; and that mixed export once more with the SmoothQuant-b
input transform of `--smooth-alpha 0.5` (per-channel act_shift / act_smooth, W * smooth and the shifted bias); and all
18 convs with per-token activations (`--act-mode token`: act_quant [1, 0] + act_dynamic, feature bit 5), and per input
step and group of 4 channels (`--act-mode frame4`: act_group as well, feature bit 7).

Asserts, for both: the file is version 2 with the int8 feature and s8 encoder weights; the engine's tokens equal the
reference's on >= 99.5 % of the frames; the engine's latents are within 1e-2 (relative) of the reference's while
the float model's are far (> 1e-2, so int8 really ran); the float .wtk's engine tokens equal the float reference's.

Why not bit-exact: the engine's fused oneDNN ELU / sum post-ops and its int8 RNN's gate arithmetic round a few
values differently in the last float bit; where such a value lies on a u8 rounding boundary one code differs, and a
different hidden-state code of the int8 LSTM persists for some frames. With PyTorch's random LSTM init such a
difference lived ~40 frames (99.33 % of the tokens); with the recurrent weights halved (a more contractive recurrence)
~15 frames: 1 of 600 tokens differs, latents 2.9e-3 apart. Run by ctest
(python_qat_export); ~10 s.

    /usr/bin/python3 python/tests/qat_export_test.py build/wavtok
"""
import os
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import qat  # noqa: E402
from wavtok_ref import WavTokenizer  # noqa: E402
from train import lsuv_init_encoder  # noqa: E402


def write_wav(path, x):
    s = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(s.tobytes())
    return s.astype(np.float32) / 32768.0


def test_signal(seconds, rng):
    t = np.arange(int(24000 * seconds)) / 24000.0
    f = 120 + 80 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f) / 24000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t) ** 2
    x = env * (0.3 * np.sin(ph) + 0.1 * np.sin(3 * ph + 0.4)) + 0.02 * rng.standard_normal(t.size)
    return (x * 0.8).astype(np.float32)


def engine_encode(cli, model, wav, out_dir, tag):
    txt, lat = os.path.join(out_dir, tag + ".txt"), os.path.join(out_dir, tag + ".lat.npy")
    subprocess.run([cli, "encode", wav, "-m", model, "-o", txt, "--format", "txt", "--latents", lat, "-q", "-t", "1"],
                   check=True)
    with open(txt) as f:
        codes = np.array([int(v) for v in f.read().split()], dtype=np.int64)
    return codes, np.load(lat)[0]


def check_export(cli, d, fwtk, xt, calib, float_convs, failures, smooth_alpha=None, act_mode="static"):
    """Fake-quantize the float model of fwtk (convs in float_convs left float), perturb it as a fine-tune would,
    export, encode with the engine, compare with the engine-exact reference; appends to failures."""
    tag = ("mixed" if float_convs else "all") + ("-smoothed" if smooth_alpha is not None else "") + \
        ("" if act_mode == "static" else "-" + act_mode)
    qwtk = os.path.join(d, f"qat-{tag}.wtk")
    q = qat.load_qat_model(fwtk, float_convs=float_convs, act_mode=act_mode)
    n_conv = sum(isinstance(mod, qat.QConv1d) for mod in qat.qat_modules(q))
    want_conv = 18 - (5 if float_convs else 0)
    if n_conv != want_conv:
        failures.append(f"{tag}: {n_conv} int8 convs prepared (want {want_conv})")
    e = qat.codebook(q).detach()
    for mod in qat.qat_modules(q):
        mod.quant = False
    with torch.no_grad():
        z_float = q.feature_extractor.encoder(xt[:, None])
    calib_in = [c for c in calib]
    qat.calibrate(q, calib_in, "minmax", smooth_alpha)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for mod in qat.qat_modules(q):  # what a fine-tune leaves: moved weights, scales off min-max
            mod.t_w.add_((torch.rand(mod.t_w.shape, generator=g) - 0.5) * 0.5)
            if isinstance(mod, qat.QConv1d):
                mod.t_a.add_((torch.rand(1, generator=g) - 0.5) * 0.5)
                mod.weight.mul_(1 + 0.02 * torch.randn(mod.weight.shape, generator=g))
            else:
                mod.t_div.add_((torch.rand(1, generator=g) - 0.5) * 0.5)
        for name, mod in q.feature_extractor.encodec.encoder.named_modules():  # fine-tuned float convs
            if isinstance(mod, torch.nn.Conv1d) and hasattr(mod, "weight_v"):
                mod.weight_v.mul_(1 + 0.02 * torch.randn(mod.weight_v.shape, generator=g))
        z_lsq = q.feature_extractor.encoder(xt[:, None])  # the training forward (float32 fake quant)
        qat.set_engine_exact(q)
        z_ref = q.feature_extractor.encoder(xt[:, None])  # the engine's rounding of every step
    ref = qat.nearest_codes(z_ref, e).reshape(-1).numpy()
    ref_float = qat.nearest_codes(z_float, e).reshape(-1).numpy()
    n = qat.export_wtk(q, fwtk, qwtk)
    if n != {"int8_convs": want_conv, "int8_lstms": 1}:
        failures.append(f"{tag}: exported {n}")
    with open(qwtk, "rb") as f:
        head = f.read(16)
    version, feats = struct.unpack_from("<II", head, 8)
    group = qat.act_group(act_mode)
    # int8, + token-act (act_dynamic), + group-act (act_group)
    want_feats = 1 | (32 if act_mode != "static" else 0) | (128 if group else 0)
    if version != 2 or feats != want_feats:
        failures.append(f"{tag}: exported file has version {version}, features {feats:#x} (want 2, {want_feats:#x})")
    _, _, _, tensors = qat.read_wtk_raw(qwtk)
    s8 = [k for k, a in tensors if a.dtype == np.int8]
    n_smooth = sum(k.endswith(".conv.act_smooth") for k, _ in tensors)
    n_dyn = sum(k.endswith(".conv.act_dynamic") for k, _ in tensors)
    if n_dyn != (want_conv if act_mode != "static" else 0):
        failures.append(f"{tag}: {n_dyn} convs with act_dynamic in the export")
    groups = {k: float(a[0]) for k, a in tensors if k.endswith(".conv.act_group")}
    want_groups = {mod.name + ".act_group": float(mod.group()) for mod in qat.qat_modules(q)
                   if isinstance(mod, qat.QConv1d) and group}
    if groups != want_groups or (group and not any(v == group for v in groups.values())):
        failures.append(f"{tag}: act_group tensors {groups} (want {want_groups})")
    if n_smooth != (want_conv if smooth_alpha is not None else 0):
        failures.append(f"{tag}: {n_smooth} convs with act_smooth in the export")
    lstm_ws = [a for k, a in tensors if k.endswith(".lstm.weight_scale")]
    lstm = [m for m in qat.qat_modules(q) if isinstance(m, qat.QLSTM)][0]
    if len(lstm_ws) != 1 or lstm_ws[0].size != 2 * lstm.layers * 4 * lstm.hidden:  # per-matrix row scales
        failures.append(f"{tag}: LSTM weight_scale sizes {[x.size for x in lstm_ws]} (want one of "
                        f"{2 * lstm.layers * 4 * lstm.hidden}: per row of each matrix)")
    if len(s8) != want_conv + 4:
        failures.append(f"{tag}: {len(s8)} s8 tensors in the export (want {want_conv} conv weights + 4 LSTM matrices)")

    codes, lat = engine_encode(cli, qwtk, os.path.join(d, "in.wav"), d, "qat-" + tag)
    fcodes, flat = engine_encode(cli, fwtk, os.path.join(d, "in.wav"), d, "float")
    zr = z_ref[0].numpy()
    nf = min(len(codes), len(ref))
    agree = float(np.mean(codes[:nf] == ref[:nf]))
    rel = float(np.linalg.norm(lat[:, :nf] - zr[:, :nf]) / np.linalg.norm(zr[:, :nf]))
    rel_float = float(np.linalg.norm(flat[:, :nf] - zr[:, :nf]) / np.linalg.norm(zr[:, :nf]))
    f_agree = float(np.mean(fcodes[:nf] == ref_float[:nf]))
    train_ref = qat.nearest_codes(z_lsq, e).reshape(-1).numpy()
    print(f"{tag} ({want_conv} int8 convs): training forward vs engine-exact reference: tokens {np.mean(train_ref == ref) * 100:.2f}%, latents "
          f"{float((z_lsq - z_ref).norm() / z_ref.norm()):.2e}")
    q_vs_f = float(np.mean(ref[:nf] == ref_float[:nf]))
    print(f"frames: engine {len(codes)}, reference {len(ref)}; engine int8 tokens = fake-quant reference: "
          f"{agree * 100:.2f}%; latents rel. error {rel:.2e} (float model's latents: {rel_float:.2e}); "
          f"float engine = float reference {f_agree * 100:.2f}%; int8 reference = float reference "
          f"{q_vs_f * 100:.2f}%")
    fe = np.linalg.norm(lat[:, :nf] - zr[:, :nf], axis=0) / np.linalg.norm(zr[:, :nf], axis=0)
    print("frames whose tokens differ:", np.nonzero(codes[:nf] != ref[:nf])[0].tolist(),
          "; frames with latent error > 1e-3:", np.nonzero(fe > 1e-3)[0].tolist()[:40])
    if len(codes) != len(ref):
        failures.append(f"{tag}: frame counts differ: engine {len(codes)}, reference {len(ref)}")
    if agree < 0.995:
        failures.append(f"{tag}: engine int8 tokens equal the fake-quant reference on {agree * 100:.2f}% < 99.5%")
    if not rel < 1e-2:
        failures.append(f"{tag}: engine int8 latents {rel:.2e} from the fake-quant reference (want < 1e-2)")
    if not rel_float > 1e-2:
        failures.append(f"{tag}: float latents only {rel_float:.2e} from the int8 reference: int8 did not run?")
    if f_agree < 0.995:
        failures.append(f"{tag}: float engine tokens equal the float reference on {f_agree * 100:.2f}% only")


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else "build/wavtok"
    torch.manual_seed(3)
    torch.set_num_threads(1)
    rng = np.random.default_rng(5)
    kw = dict(n_filters=8, dimension=32, ratios=[8, 5, 4, 2], codebook_size=16, n_q=1, backbone_dim=64,
              intermediate_dim=128, num_layers=2, adanorm_num_embeddings=4)
    m = WavTokenizer(**kw).eval()
    calib = [torch.from_numpy(test_signal(1.0, np.random.default_rng(s)))[None] for s in range(4)]
    failures = []
    with tempfile.TemporaryDirectory() as d:
        x = write_wav(os.path.join(d, "in.wav"), test_signal(8.0, rng))  # 8 s = 600 frames, the int16 samples
        xt = torch.from_numpy(x)[None]
        class Clips:  # train.py's LSUV init wants a sampler
            def batch(self, _rng, n):
                return torch.cat(calib)[:n]
        with torch.no_grad():  # a contractive recurrence (see the docstring)
            for mod in m.modules():
                if isinstance(mod, torch.nn.LSTM):
                    for l in range(mod.num_layers):
                        getattr(mod, f"weight_hh_l{l}").mul_(0.5)
        lsuv_init_encoder(m, Clips(), None, {"data": {"batch_size": 4}}, 1.0, 1, lambda msg: None)
        with torch.no_grad():
            # a codebook of the model's own latents, so the tokens depend on the latents (not one code for all)
            z = m.feature_extractor.encoder(torch.cat(calib)[:, None]).transpose(1, 2).reshape(-1, 32)
            cb = m.feature_extractor.quantizer.vq.layers[0]._codebook
            cb.embed.copy_(z[torch.randperm(z.shape[0])[:16]])
            cb.inited.fill_(1)
        m.save_checkpoint(os.path.join(d, "m.ckpt"), os.path.join(d, "config.yaml"))
        fwtk, qwtk = os.path.join(d, "float.wtk"), os.path.join(d, "qat.wtk")
        subprocess.run([cli, "convert", os.path.join(d, "m.ckpt"), "--config", os.path.join(d, "config.yaml"),
                        "-o", fwtk, "-q"], check=True)

        check_export(cli, d, fwtk, xt, calib, None, failures)
        # a mixed recipe (configs/quant/qat-*.yaml): the first stages float, fine-tuned as float convs
        check_export(cli, d, fwtk, xt, calib, ["model.0", "model.1", "model.3"], failures)
        # the SmoothQuant-b input transform (--smooth-alpha): act_shift / act_smooth per int8 conv
        check_export(cli, d, fwtk, xt, calib, ["model.0", "model.1", "model.3"], failures, smooth_alpha=0.5)
        # per-token activations (--act-mode token): every conv's im2col rows on their own range, act_dynamic
        check_export(cli, d, fwtk, xt, calib, None, failures, act_mode="token")
        # per input step and group of 4 channels (--act-mode frame4): act_group, the engine's per-group kernel (the
        # first conv's single channel is one group of 1)
        check_export(cli, d, fwtk, xt, calib, None, failures, act_mode="frame4")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
