#!/usr/bin/python3
"""Which encoder convs cost the tokens in int8 (docs/PTQ.md "Quantization-aware fine-tuning", choosing the float
convs of a mixed recipe). No training: the fake-quant encoder of python/qat.py with the calibration `qat.py train`
starts from (same seed, same batches), its token agreement with the float model on held-out clips for

- every conv int8 (+ the int8 LSTM), the PTQ start of a fine-tune;
- each conv alone left float (leave-one-out), and each conv alone in int8 (the rest float, the LSTM int8);
- a greedy order: the conv whose float version gains most, added one by one to the float set (--greedy N).

    /usr/bin/python3 python/qat_probe.py --clips 40 --greedy 4 --json runs/qat-probe.json
    /usr/bin/python3 python/qat_probe.py --run runs/qat-lsq      # the same from a fine-tuned checkpoint
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qat  # noqa: E402


def _u8(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """v on the engine's asymmetric u8 grid of [min(lo, 0), max(hi, 0)], dequantized (lo/hi broadcast with v)."""
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    s = ((hi - lo) / 255.0).clamp(min=1e-8)
    z = torch.round(-lo / s).clamp(0, 255)
    return torch.round(torch.clamp(v / s, -z, 255 - z)) * s


def install_dynamic_range(mode: str, float_weights: bool = False):
    """Replaces QConv1d's int8 forward by one whose input range is measured on the input itself (a probe of what a
    dynamic range would keep; the engine's int8 convs use the calibrated static range). Weights: the calibrated s8
    per-channel codes, or float (`float_weights`: what the activations alone cost)."""
    F = torch.nn.functional
    ok = mode in ("call", "token", "frame", "none") or any(
        mode.startswith(p) and mode[len(p):].isdigit() for p in ("block", "frame"))
    if not ok:
        raise SystemExit(f"--dynamic: unknown mode '{mode}' (none, call, blockN, token, frame, frameN)")
    plain = qat.QConv1d.forward

    def forward(self, x):
        if not self.quant or self.calib is not None:
            return plain(self, x)
        if self.groups != 1 or self.transformed():
            raise SystemExit(f"--dynamic: {self.name} is grouped or has an input transform (--smooth-alpha)")
        sw = self.sw0 * torch.exp(self.t_w)
        w = self.weight if float_weights else qat.weight_codes(self.weight, sw, self.qmax).float() * sw[:, None, None]
        if mode == "none":  # float activations (with float_weights off: the int8 weights alone)
            return F.conv1d(x, w, self.bias, self.stride, 0, self.dilation, self.groups)
        if mode.startswith("frame"):
            # one range per input step over all its channels, or per group of N channels of the step (frameN)
            n = min(int(mode[5:]), x.shape[1]) if mode != "frame" else x.shape[1]
            if x.shape[1] % n:
                raise SystemExit(f"--dynamic {mode}: {self.name} has {x.shape[1]} input channels")
            g = x.reshape(x.shape[0], x.shape[1] // n, n, x.shape[2])
            xq = _u8(g, g.amin(2, keepdim=True), g.amax(2, keepdim=True)).reshape(x.shape)
            return F.conv1d(xq, w, self.bias, self.stride, 0, self.dilation, self.groups)
        if mode == "token":
            K, d, st = self.kernel_size[0], self.dilation[0], self.stride[0]
            cols = F.unfold(x[:, :, None, :], (1, K), dilation=(1, d), stride=(1, st))  # (B, Cin*K, L): c major
            q = _u8(cols, cols.amin(1, keepdim=True), cols.amax(1, keepdim=True))
            return torch.einsum("ok,bkl->bol", w.reshape(w.shape[0], -1), q) + self.bias[None, :, None]
        if mode == "call":
            xq = _u8(x, x.min(), x.max())
        else:
            n = int(mode[5:])
            xq = torch.cat([_u8(b, b.min(), b.max()) for b in torch.split(x, n, dim=2)], 2)
        return F.conv1d(xq, w, self.bias, self.stride, 0, self.dilation, self.groups)

    qat.QConv1d.forward = forward


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-wtk", default="codec/default/wavtok-default.wtk")
    ap.add_argument("--run", default=None, help="start from this qat.py run's checkpoint instead of calibrating")
    ap.add_argument("--train-filelist", default="data/train/filelist")
    ap.add_argument("--eval-filelist", default="data/eval/filelist")
    ap.add_argument("--clips", type=int, default=40, help="held-out clips (every k-th of the filelist)")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--calib-batches", type=int, default=8)
    ap.add_argument("--act-init", choices=["minmax", "mse"], default="mse")
    ap.add_argument("--wbits", type=int, default=8)
    ap.add_argument("--greedy", type=int, default=0, help="greedy steps (convs added to the float set)")
    ap.add_argument("--single", choices=["both", "only", "leave", "none"], default="both",
                    help="one-conv-at-a-time tables: int8 alone (only), float alone (leave), both or none")
    ap.add_argument("--float-convs", default="", help="comma list kept float in every configuration")
    ap.add_argument("--int8-convs", default="", help="comma list: only these int8 (the complement of --float-convs)")
    ap.add_argument("--lstm-scales", choices=["per_matrix", "shared"], default="per_matrix",
                    help="int8 LSTM weight scales (python/qat.py --lstm-scales)")
    ap.add_argument("--float-lstm", action="store_true", help="the LSTM float in every configuration")
    ap.add_argument("--smooth-alpha", type=float, default=None, help="SmoothQuant-b transform (qat.py train)")
    ap.add_argument("--smooth-no-shift", action="store_true")
    ap.add_argument("--dynamic", default="none", help="activation range of the int8 convs instead of the calibrated "
                    "static one (no fine-tuning): none | call (min/max of each input tensor) | blockN (of every N "
                    "input steps, all channels) | token (each output step's im2col row of Cin x K inputs) | frame "
                    "(each input step's Cin values, coded once for the K output steps that read it; the engine's "
                    "per-token kernel ranges whole im2col rows, as token) | frameN (each input step's groups of N "
                    "channels)")
    ap.add_argument("--float-weights", action="store_true", help="with --dynamic: float weights (the activations' "
                    "cost alone); --dynamic none --float-weights is refused, --weights-only is the other half")
    ap.add_argument("--weights-only", action="store_true", help="int8 weights, float activations (the weights' cost "
                    "alone)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.weights_only:
        if a.dynamic != "none" or a.float_weights:
            raise SystemExit("--weights-only takes no --dynamic or --float-weights")
        install_dynamic_range("none")
    elif a.dynamic != "none":
        install_dynamic_range(a.dynamic, a.float_weights)
    elif a.float_weights:
        raise SystemExit("--float-weights needs --dynamic")
    torch.set_num_threads(1)
    from train import CropSampler, read_filelist, read_wav_int16  # noqa: E402
    from wtk_io import load_wtk_as_reference

    if a.run:
        model, st = qat.load_run(a.run)
        init = st["cfg"]["init_wtk"]
    else:
        model = qat.prepare_qat(load_wtk_as_reference(a.init_wtk), True, True, a.wbits, lstm_scales=a.lstm_scales)
        init = a.init_wtk
    teacher = load_wtk_as_reference(init)
    enc, t_enc = model.feature_extractor.encodec.encoder, teacher.feature_extractor.encodec.encoder
    e = qat.codebook(teacher).detach()
    if not a.run:
        rng = np.random.default_rng(a.seed)
        torch.manual_seed(a.seed)
        sampler = CropSampler(a.train_filelist, 24000 // 320 * 320, gain_db=(-6.0, 6.0))
        calib = [sampler.batch(rng, a.batch) for _ in range(a.calib_batches)]
        qat.calibrate(model, calib, a.act_init, a.smooth_alpha, not a.smooth_no_shift)
    files = read_filelist(a.eval_filelist)
    k = max(1, len(files) // a.clips)
    files = files[::k][: a.clips]
    audio = [torch.from_numpy(read_wav_int16(p).astype(np.float32) / 32768.0)[None] for p in files]
    audio = [x[:, : x.shape[1] // 320 * 320] for x in audio]
    with torch.no_grad():
        ref = [qat.nearest_codes(t_enc(x[:, None]), e) for x in audio]
    convs = {m.name[len(qat.ENC):].removesuffix(".conv"): m for m in qat.qat_modules(model) if isinstance(m, qat.QConv1d)}
    lstm = [m for m in qat.qat_modules(model) if isinstance(m, qat.QLSTM)]
    base_float = {n for n in convs if qat._is_float_conv(n, a.float_convs.split(","))}
    if a.int8_convs:
        base_float = {n for n in convs if not qat._is_float_conv(n, a.int8_convs.split(","))}

    @torch.no_grad()
    def agree(float_set, lstm_q=not a.float_lstm):
        for n, m in convs.items():
            m.quant = n not in float_set
        for m in lstm:
            m.quant = lstm_q
        kk = nn = 0
        for x, r in zip(audio, ref):
            c = qat.nearest_codes(enc(x[:, None]), e)
            kk += int((c == r).sum())
            nn += r.numel()
        return 100.0 * kk / nn

    t0 = time.time()
    res = {"clips": len(files), "frames": int(sum(r.numel() for r in ref)), "convs": list(convs)}
    res["all_int8"] = agree(base_float)
    print(f"{len(files)} clips, {res['frames']} frames; int8 convs {sorted(set(convs) - base_float)} + int8 LSTM: "
          f"{res['all_int8']:.2f}% ({time.time() - t0:.0f} s)".replace("int8 LSTM", "float LSTM" if a.float_lstm else "int8 LSTM"), flush=True)
    res["float_convs_int8_lstm"] = agree(set(convs))
    print(f"every conv float, int8 LSTM: {res['float_convs_int8_lstm']:.2f}%", flush=True)
    if a.single != "none":
        res["leave_one_float"], res["only_one_int8"] = {}, {}
        for n in convs:
            line = f"  {n:28s}"
            if a.single in ("both", "leave"):
                res["leave_one_float"][n] = agree(base_float | {n})
                line += f" float (rest int8): {res['leave_one_float'][n]:6.2f}%"
            if a.single in ("both", "only"):
                res["only_one_int8"][n] = agree(set(convs) - {n})
                line += f" int8 alone (+ int8 LSTM): {res['only_one_int8'][n]:6.2f}%"
            print(line, flush=True)
    fl = set(base_float)
    res["greedy"] = []
    for _ in range(a.greedy):
        best = max((agree(fl | {n}), n) for n in convs if n not in fl)
        fl.add(best[1])
        res["greedy"].append([best[1], best[0]])
        print(f"greedy: float {sorted(fl)} -> {best[0]:.2f}%", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
