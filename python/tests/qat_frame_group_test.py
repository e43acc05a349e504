#!/usr/bin/env python3
"""QAT with activation ranges per input step and group of N channels (`qat.py train --act-mode frameN`, docs/PTQ.md
"Activation ranges per step and channel group"): the fake-quant conv against an independent float64 computation of
the same codes, the straight-through gradient and the group size rules. And W4 weights in groups with integer
multipliers (`qat.py train --wgroup N`): the codes are m * q with |q| <= 7 and one m in [1, 18] per group, m from the
group's range, the fake-quant weight is codes * the row scale, and the row scale gets an LSQ gradient.

    /usr/bin/python3 python/tests/qat_frame_group_test.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qat  # noqa: E402


def reference(x, w, b, group, stride, dilation):
    """Each (batch, step, group of channels): u8 range [min(v, 0), max(v, 0)], s = (hi - lo) / 255 in float32,
    z = rint(-lo / s), codes clamp(rint(v / s), -z, 255 - z) + z; the weight's s8 codes per output channel
    (max |w| / 127); the conv of the dequantized values in float64."""
    x = x.numpy().astype(np.float32)
    B, C, T = x.shape
    g = x.reshape(B, C // group, group, T)
    lo = np.minimum(g.min(2, keepdims=True), 0.0)
    hi = np.maximum(g.max(2, keepdims=True), 0.0)
    s = np.maximum((hi - lo) / np.float32(255.0), np.float32(1e-8)).astype(np.float32)
    inv = (np.float32(1.0) / s).astype(np.float32)
    z = np.clip(np.rint(-lo * inv), 0, 255)
    q = np.rint(np.clip(g * inv, -z, 255 - z)) + z
    xd = ((q - z) * s).reshape(B, C, T).astype(np.float64)
    w = w.numpy()
    sw = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(1) / 127.0, 1e-8).astype(np.float32)
    wd = np.clip(np.rint(w / sw[:, None, None]), -127, 127) * sw[:, None, None].astype(np.float64)
    K = w.shape[2]
    L = (T - dilation * (K - 1) - 1) // stride + 1
    y = np.zeros((B, w.shape[0], L))
    for k in range(K):
        xs = xd[:, :, k * dilation: k * dilation + (L - 1) * stride + 1: stride]
        y += np.einsum("oc,bcl->bol", wd[:, :, k], xs)
    return y + b.numpy().astype(np.float64)[None, :, None]


def check_weight_groups(failures):
    torch.manual_seed(4)
    conv = torch.nn.Conv1d(24, 6, 3)
    with torch.no_grad():  # rows whose groups differ in range by up to 8x
        conv.weight.mul_(torch.tensor([1.0, 0.125, 0.5, 0.25] * 18)[None, :72].reshape(1, 24, 3))
    m = qat.QConv1d(conv, "g.conv", 4, 8)
    sw, _ = m.scales()
    w = m.weight
    codes = m.wcodes(w, sw).numpy().astype(np.int64).reshape(6, -1)
    wn = w.detach().numpy().astype(np.float64).reshape(6, -1)
    s0 = np.abs(wn).max(1) / 127.0
    for o in range(6):
        for a in range(0, 72, 8):
            g = wn[o, a:a + 8]
            mult = int(np.clip(np.rint(np.abs(g).max() / (7 * s0[o])), 1, 18))
            q = codes[o, a:a + 8]
            if np.any(q % mult) or np.abs(q // mult).max() > 7:
                failures.append(f"W4 groups: row {o} group {a // 8}: codes {q.tolist()} are not {mult} x [-7, 7]")
                return
            want = np.clip(np.rint(g / (s0[o] * mult)), -7, 7) * mult
            if np.abs(want - q).max() > 1:  # float32 against float64 rounding at a tie
                failures.append(f"W4 groups: row {o} group {a // 8}: codes {q.tolist()}, want {want.tolist()}")
                return
    mults = {int(np.abs(codes[o, a:a + 8]).max()) for o in range(6) for a in range(0, 72, 8)}
    if len(mults) < 3:
        failures.append(f"W4 groups: the groups' largest codes {sorted(mults)} do not follow their ranges")
    fq = m.qweight(w, sw)
    err = (fq.detach() - torch.from_numpy(codes.reshape(w.shape)).float() * sw.detach()[:, None, None]).abs().max()
    if err > 1e-6 * float(sw.max()) * 127:
        failures.append(f"W4 groups: the fake-quant weight is {float(err):.2e} from codes x row scale")
    fq.pow(2).sum().backward()
    if m.t_w.grad is None or not torch.isfinite(m.t_w.grad).all() or m.t_w.grad.abs().sum() == 0:
        failures.append("W4 groups: no LSQ gradient for the row scales")
    r = qat.QConv1d(conv, "r.conv", 4)
    e_row = float((r.qweight(w, r.scales()[0]) - w).pow(2).sum())
    e_grp = float((fq - w).pow(2).sum())
    print(f"W4 weight error on rows with 8x range steps: per row {e_row:.3e}, groups of 8 {e_grp:.3e}")
    if not e_grp < 0.7 * e_row:  # measured 0.45
        failures.append("W4 groups: no smaller weight error than one scale per row")


def main():
    torch.manual_seed(5)
    failures = []
    for cin, cout, k, stride, dil, group in [(16, 8, 3, 1, 1, 8), (32, 16, 4, 2, 1, 4), (8, 12, 7, 1, 3, 8),
                                             (1, 8, 7, 1, 1, 4)]:
        conv = torch.nn.Conv1d(cin, cout, k, stride=stride, dilation=dil)
        m = qat.QConv1d(conv, "t.conv", 8)
        m.set_token(True, group)
        g = min(group, cin)  # a conv with fewer inputs than the group ranges the whole step
        if m.group() != g:
            failures.append(f"group {m.group()} != {g}")
        x = torch.randn(2, cin, 57) * torch.linspace(0.1, 3.0, cin)[None, :, None] + 0.3
        with torch.no_grad():
            y = m(x).double().numpy()
        want = reference(x, m.weight.detach(), m.bias.detach(), g, stride, dil)
        err = np.abs(y - want).max() / max(1.0, np.abs(want).max())
        print(f"cin {cin} cout {cout} k {k} stride {stride} dilation {dil} group {g}: max rel error {err:.2e}")
        if err > 1e-5:
            failures.append(f"cin {cin}: fake-quant conv {err:.2e} from the reference")
        # a coarser range (the whole step) is a different quantization: the test can tell them apart
        m.set_token(True, cin)
        with torch.no_grad():
            coarse = np.abs(m(x).double().numpy() - want).max() / max(1.0, np.abs(want).max())
        if cin > g and coarse < 10 * max(err, 1e-7):
            failures.append(f"cin {cin}: per-step ranges gave the same output as per-group ones")
        m.set_token(True, g)
        # straight-through: the input gradient is the float conv's gradient of the weights the layer runs
        xr = x.clone().requires_grad_(True)
        m(xr).sum().backward()
        if xr.grad is None or not torch.isfinite(xr.grad).all() or xr.grad.abs().sum() == 0:
            failures.append(f"cin {cin}: no straight-through gradient")
    m = qat.QConv1d(torch.nn.Conv1d(12, 4, 3), "t.conv", 8)
    try:
        m.set_token(True, 8)
        failures.append("12 channels in groups of 8 accepted")
    except ValueError as e:
        print("refused:", e)
    for mode, want in (("static", 0), ("token", 0), ("frame8", 8), ("frame1", 1)):
        if qat.act_group(mode) != want:
            failures.append(f"act_group({mode}) != {want}")
    for bad in ("frame", "frame0", "frameX", "tokens"):
        try:
            qat.act_group(bad)
            failures.append(f"act_mode {bad} accepted")
        except ValueError:
            pass
    check_weight_groups(failures)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
