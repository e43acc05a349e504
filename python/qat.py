#!/usr/bin/python3
"""Quantization-aware fine-tuning of the SEANet encoder (issue 24, item 1; docs/PTQ.md "Quantization-aware
fine-tuning").

    /usr/bin/python3 python/qat.py train --init-wtk codec/default/wavtok-default.wtk --run runs/qat-gaqat \
        --method gaqat --max-minutes 55
    /usr/bin/python3 python/qat.py export --run runs/qat-gaqat --base runs/qat-base.wtk -o runs/qat-gaqat/model.wtk

The encoder's convolutions (every SEANet Conv1d) and its LSTM run fake-quantized exactly as the engine's int8
kernels compute them (nn/layers.h Int8Params / LstmInt8Params):
- conv input: u8 per tensor, asymmetric, q = clamp(rint(x * (1/s_a)), -z, 255 - z) + z (the float32 reciprocal
  and rint half-to-even as in nn/layers.cc quantize_act), dequantized (q - z) * s_a; the zero point z stays the
  integer calibrated at initialisation, the scale s_a is learned;
- conv weight: s8 symmetric per output channel, clamp(rint(w / s_w[o]), -127, 127) (core/util.cc
  int8_weight_codes), s_w learned;
- or, with `--act-mode token` (the engine's per-token activations, Int8Params::dynamic, recipe key
  `act_range: token`): each output step's im2col row (the Cin*K inputs it reads) on its own u8 range at run time,
  lo = min(row, 0), hi = max(row, 0), s = max((hi - lo) / 255, 1e-8), z = clamp(rint(-lo * (1/s)), 0, 255),
  q = clamp(rint(v * (1/s)), -z, 255 - z) + z; nothing to learn or calibrate on the activation side (straight-through
  estimator for the rounding); exported as act_quant [1, 0] + act_dynamic [1] = 1;
- or, with `--act-mode frameN`, the same u8 range per input step and group of N channels (all of a conv's channels
  where it has N or fewer): finer ranges than a whole im2col row; exported as act_dynamic [1] = 1 plus act_group [1]
  = N (the engine's Int8Params::act_group, feature bit 7);
- LSTM: every layer input and hidden state u8 = clamp(rint(v * 127 + 128)) with the layer-0 input divided by
  `in_divisor` first (k = 127 / in_divisor, clamp(rint(x * k + 128))), s8 weights with one scale per row of each
  matrix (`--lstm-scales per_matrix`, the default: the engine's own int8 LSTM kernels, W_ih x and W_hh h summed
  apart) or one per gate row shared by every layer's W_ih / W_hh (`shared`, oneDNN's RNN), W_ih_l0 multiplied by
  in_divisor before rounding, f32 gates and cell; in_divisor and the row scales are learned.
Scales are learned LSQ-style (straight-through estimator for the rounding, the LSQ gradient for the step size),
parametrised as s = s0 * exp(t) so that Adam's steps are relative. The loss distils the float encoder: latent MSE
(relative to the latents' energy) plus a margin hinge on the codebook assignment (the float model's code must stay
nearer than the runner-up by a relative margin). `--w-init gptq` starts the quantized convs from their GPTQ rounding
(gptq_init) instead of the nearest codes.

Methods: `lsq` (the control: task gradient for weights and scales) and `gaqat` (GAQAT, Jiang et al. 2024, our own
code): each step also evaluates a SAM-perturbed loss (weights moved by rho * g / |g|); the weights step along the
perturbed gradient, and for every quantizer (one layer's weight scales, its activation scale) the signs of the task
gradient and the flatness gradient (perturbed minus task) of its scales are compared; the fraction of disagreeing
elements is averaged over the last `window` steps and the quantizer's scales are frozen (no update, Adam state
untouched) while that average exceeds `freeze_above`, and thawed again when it falls below it.

Resumable like train.py: runs/<name>/last.ckpt every few minutes and on SIGTERM/SIGINT; rerun to resume.
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
from collections import deque
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from wavtok_ref import WavTokenizer  # noqa: E402
from wavtok_ref.seanet import NormConv1d, SLSTM  # noqa: E402
from wtk_io import read_wtk_raw, write_wtk_raw  # noqa: E402 (.wtk versions 1 and 2; tests use qat.read_wtk_raw)

ENC = "feature_extractor.encodec.encoder."


# --------------------------------------------------------------------------- fake quantization (engine-exact)
class _FakeQuantAct(torch.autograd.Function):
    """u8 asymmetric per tensor: out = (clamp(rint(x * (1/s)), -z, 255 - z)) * s. LSQ gradients."""

    @staticmethod
    def forward(ctx, x, s, z: int, gscale: float):
        inv = 1.0 / s  # float32 reciprocal, as the engine's inv = 1.0f / act_scale
        v = x * inv
        lo, hi = -float(z), 255.0 - float(z)
        q = torch.round(torch.clamp(v, lo, hi))  # clamp first: the bounds are integers (same as rounding first)
        ctx.save_for_backward(v, q)
        ctx.bounds = (lo, hi)
        ctx.gscale = gscale
        return q * s

    @staticmethod
    def backward(ctx, g):
        v, q = ctx.saved_tensors
        lo, hi = ctx.bounds
        inside = (v >= lo) & (v <= hi)
        gx = g * inside.to(g.dtype)
        ds = torch.where(inside, q - v, q)  # d(q s)/ds: rint(v) - v inside, the clamp bound outside
        gs = (g * ds).sum().reshape(1) * ctx.gscale
        return gx, gs, None, None


class _FakeQuantWeight(torch.autograd.Function):
    """s8 symmetric per output channel (dim 0): out = clamp(rint(w / s[o]), -qmax, qmax) * s[o]. LSQ gradients."""

    @staticmethod
    def forward(ctx, w, s, qmax: int, gscale: float):
        sv = s.view(-1, *([1] * (w.dim() - 1)))
        v = w / sv
        q = torch.clamp(torch.round(v), -qmax, qmax)
        ctx.save_for_backward(v, q)
        ctx.qmax = qmax
        ctx.gscale = gscale
        return q * sv

    @staticmethod
    def backward(ctx, g):
        v, q = ctx.saved_tensors
        inside = v.abs() <= ctx.qmax
        gw = g * inside.to(g.dtype)
        ds = torch.where(inside, q - v, q)
        gs = (g * ds).reshape(g.shape[0], -1).sum(1) * ctx.gscale
        return gw, gs, None, None


def fq_act(x, s, z, gscale):
    return _FakeQuantAct.apply(x, s, int(z), float(gscale))


def fq_weight(w, s, qmax, gscale):
    return _FakeQuantWeight.apply(w, s, int(qmax), float(gscale))


@torch.no_grad()
def token_row_params(cols: torch.Tensor):
    """Per-token u8 parameters of im2col columns cols [B, C*K, L] (the engine's Int8Params::dynamic, float32):
    s, inv = 1 / s and the zero point z, each [B, 1, L]."""
    lo = cols.amin(1, keepdim=True).clamp(max=0.0)
    hi = cols.amax(1, keepdim=True).clamp(min=0.0)
    s = ((hi - lo) / 255.0).clamp(min=1e-8)
    inv = 1.0 / s  # float32 reciprocal, as the engine's
    z = torch.clamp(torch.round(-lo * inv), 0.0, 255.0)
    return s, inv, z


def token_codes(cols: torch.Tensor, inv: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """u8 codes (as float) clamp(rint(v * inv), -z, 255 - z) + z of every value of cols."""
    return torch.round(torch.minimum(torch.maximum(cols * inv, -z), 255.0 - z)) + z


def im2col(x: torch.Tensor, k: int, stride: int, dilation: int) -> torch.Tensor:
    """[B, C, T] -> [B, C*K, L] in torch's unfold order (c major, k minor), L = the conv's output length."""
    return F.unfold(x[:, :, None, :], (1, k), dilation=(1, dilation), stride=(1, stride))


def weight_codes(w: torch.Tensor, s: torch.Tensor, qmax: int = 127) -> torch.Tensor:
    """The s8 codes the engine computes (core/util.cc int8_weight_codes), float32 arithmetic."""
    sv = s.view(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w / sv), -qmax, qmax).to(torch.int8)


class QConv1d(nn.Module):
    """An SConv1d's inner Conv1d in int8 (engine: Conv1d::set_int8, input already padded). Weight norm folded."""

    def __init__(self, conv: nn.Conv1d, name: str, wbits: int = 8, wgroup: int = 0):
        super().__init__()
        self.name = name
        if hasattr(conv, "weight_g"):  # weight norm folded, g v / |v| (what the .wtk stores)
            w = torch._weight_norm(conv.weight_v.detach(), conv.weight_g.detach(), 0).clone()
        else:
            w = conv.weight.detach().clone()
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(conv.bias.detach().clone())
        self.stride, self.dilation, self.groups = conv.stride, conv.dilation, conv.groups
        self.kernel_size = conv.kernel_size  # SConv1d.padding_for reads it
        self.qmax = 2 ** (wbits - 1) - 1
        # wgroup > 0 (below 8 bits): the weight row (Cin*K, c major) cut into groups of wgroup values, each with an
        # integer multiplier m of the row scale S_o (quant/lowbit.h's two-level scale): step S_o m, the s8 code
        # m q, q in [-qmax, qmax]; S_o starts at max|W_o| / 127 and is learned, the multipliers are fixed at init
        self.wgroup = wgroup if wbits < 8 else 0
        self.register_buffer("wmult", torch.ones(w.shape[0], w[0].numel() if self.wgroup else 1))
        s0 = (w.abs().reshape(w.shape[0], -1).amax(1) / (127 if self.wgroup else self.qmax)).clamp(min=1e-8)
        if self.wgroup:
            self.wmult.copy_(self.group_multipliers(w, s0))
        self.register_buffer("sw0", s0)
        self.t_w = nn.Parameter(torch.zeros_like(s0))  # s_w = sw0 * exp(t_w)
        self.register_buffer("sa0", torch.ones(1))
        self.register_buffer("zero", torch.zeros(1))
        self.t_a = nn.Parameter(torch.zeros(1))
        # per-input-channel transform (SmoothQuant-b, the engine's act_shift / act_smooth): the layer quantizes
        # (x - shift_c) / smooth_c and runs the weight W * smooth_c with the bias b + sum W shift (both stored so)
        cin = w.shape[1]
        self.register_buffer("shift", torch.zeros(cin))
        self.register_buffer("smooth", torch.ones(cin))
        self.register_buffer("has_transform", torch.zeros(1))
        self.register_buffer("act_token", torch.zeros(1))  # 1: per-token activations (set_token)
        # with act_token: 0 = one range per im2col row (the engine's kernel); N > 0 = one per input step and group
        # of N channels (act_mode frameN; the engine's Int8Params::act_group)
        self.register_buffer("act_group", torch.zeros(1))
        self.quant = True
        self.exact = False  # engine_forward (evaluation: the engine's rounding of every step)
        self.calib: Optional[List[float]] = None  # [lo, hi] while calibrating
        self.calib_rows: List[torch.Tensor] = []  # a sample of the input values while calibrating
        self.calib_ch = None  # per-input-channel (min, max) of the raw input while calibrating

    def scales(self):
        return self.sw0 * torch.exp(self.t_w), self.sa0 * torch.exp(self.t_a)

    @torch.no_grad()
    def group_multipliers(self, w, s0):
        """Per weight, its group's multiplier clamp(rint(max|w_g| / (qmax S_o)), 1, 127 // qmax) (min-max)."""
        rows = w.reshape(w.shape[0], -1)
        n = rows.shape[1]
        m = torch.ones_like(rows)
        for a in range(0, n, self.wgroup):
            g = rows[:, a:a + self.wgroup].abs().amax(1)
            m[:, a:a + self.wgroup] = torch.clamp(torch.round(g / (self.qmax * s0)), 1, 127 // self.qmax)[:, None]
        return m

    def qweight(self, w, sw):
        """The fake-quantized weight (LSQ gradient for sw): per row, or per group with the fixed multipliers."""
        gscale = 1.0 / math.sqrt(w[0].numel() * self.qmax)
        if not self.wgroup:
            return fq_weight(w, sw, self.qmax, gscale)
        mult = self.wmult.view_as(w)
        return fq_weight(w / mult, sw, self.qmax, gscale) * mult

    def wcodes(self, w, sw):
        """The s8 codes the engine runs with weight_scale sw: rint(w / sw) on the grid, or m * q per group."""
        if not self.wgroup:
            return weight_codes(w, sw, self.qmax)
        mult = self.wmult.view_as(w)
        return (weight_codes(w / mult, sw, self.qmax).to(torch.int16) * mult.to(torch.int16)).to(torch.int8)

    @torch.no_grad()
    def set_gptq_weight(self, h: torch.Tensor, damp: float = 0.01, clips: Sequence[float] = (1.0,)) \
            -> Tuple[float, float]:
        """The weight set to its GPTQ rounding (gptq_round) on the grid of the current row scales (and group
        multipliers), h = E[x x^T] of the im2col inputs (Cin*K square, c major). clips: row scales tried, as factors
        of the current one (the group multipliers refitted to each); every row keeps the one with the lowest output
        error. Returns the relative output errors E|(W - Q) x|^2 / E|W x|^2 of plain rounding (at the current scales)
        and of GPTQ under h."""
        w = self.tweight().reshape(self.weight.shape[0], -1)
        sw, _ = self.scales()
        hd = h.double()

        def row_err(d):
            d = d.double()
            return torch.einsum("oi,ij,oj->o", d, hd, d)
        step = sw[:, None] * self.wmult.expand_as(w)
        rtn = torch.clamp(torch.round(w / step), -self.qmax, self.qmax) * step
        best_q, best_e = None, None
        for c in clips:
            mult = self.group_multipliers(w, sw * c) if self.wgroup else self.wmult
            q = gptq_round(w, (sw * c)[:, None] * mult.expand_as(w), self.qmax, h, damp)
            e = row_err(w - q)
            if best_q is None:
                best_q, best_e, best_c, best_m = q, e, torch.full_like(sw, c), mult.clone()
            else:
                better = e < best_e
                best_q[better], best_e[better], best_c[better] = q[better], e[better], c
                best_m[better] = mult[better]
        self.sw0.mul_(best_c)
        self.wmult.copy_(best_m)
        total = float(row_err(w).sum())
        errs = (float(row_err(w - rtn).sum()) / total, float(best_e.sum()) / total)
        wq = best_q.view_as(self.weight)
        self.weight.copy_(wq / self.smooth[None, :, None] if self.transformed() else wq)
        return errs

    def transformed(self) -> bool:
        return bool(self.has_transform.item())

    def token(self) -> bool:
        return bool(self.act_token.item())

    def set_token(self, on: bool = True, group: int = 0):
        """Per-token activations (the engine's act_dynamic): no activation scale, no input transform. group > 0:
        a range per input step and group of `group` channels instead of per im2col row (act_mode frameN)."""
        group = min(group, self.weight.shape[1])  # a conv with fewer inputs ranges the whole step
        if on and group and self.weight.shape[1] % group:
            raise ValueError(f"{self.name}: {self.weight.shape[1]} input channels do not split into groups of {group}")
        self.act_group.fill_(float(group if on else 0))
        if on and self.transformed():
            raise ValueError(f"{self.name}: per-token activations take no input transform (act_shift/act_smooth)")
        if on and self.groups != 1:
            raise ValueError(f"{self.name}: per-token activations need groups == 1")
        self.act_token.fill_(1.0 if on else 0.0)

    def group(self) -> int:
        return int(self.act_group.item())

    def group_view(self, x):
        """[B, C, T] -> [B * C / N, N, T]: one row of N channels per input step and group (act_mode frameN)."""
        n = self.group()
        return x.reshape(x.shape[0] * (x.shape[1] // n), n, x.shape[2])

    def tweight(self):
        """The weight the int8 kernel runs: W * smooth_c (W without a transform)."""
        return self.weight * self.smooth[None, :, None] if self.transformed() else self.weight

    def tbias(self):
        """b + sum_{c,k} W[o, c, k] shift_c (b without a transform)."""
        if not self.transformed():
            return self.bias
        return self.bias + (self.weight * self.shift[None, :, None]).sum((1, 2))

    def tinput(self, x):
        return (x - self.shift[None, :, None]) / self.smooth[None, :, None] if self.transformed() else x

    def forward(self, x):
        if self.calib is not None:
            xt = self.tinput(x).detach()
            self.calib[0] = min(self.calib[0], float(xt.min()))
            self.calib[1] = max(self.calib[1], float(xt.max()))
            flat = xt.reshape(-1)
            self.calib_rows.append(flat[torch.randint(0, flat.numel(), (min(flat.numel(), 20000),))])
            cmin, cmax = x.detach().amin((0, 2)), x.detach().amax((0, 2))
            self.calib_ch = (cmin, cmax) if self.calib_ch is None else (torch.minimum(self.calib_ch[0], cmin),
                                                                         torch.maximum(self.calib_ch[1], cmax))
        if not self.quant:
            return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        sw, sa = self.scales()
        if self.exact:
            return self.engine_forward(x, sw, sa)
        if self.token() and self.group():
            xg = self.group_view(x)
            s, inv, z = token_row_params(xg.detach())
            xq = x + ((token_codes(xg.detach(), inv, z) - z) * s - xg).detach().reshape(x.shape)  # STE
            wq = self.qweight(self.weight, sw)
            return F.conv1d(xq, wq, self.bias, self.stride, 0, self.dilation, self.groups)
        if self.token():
            k, st, dl = self.kernel_size[0], self.stride[0], self.dilation[0]
            cols = im2col(x, k, st, dl)
            s, inv, z = token_row_params(cols.detach())
            xq = cols + ((token_codes(cols.detach(), inv, z) - z) * s - cols).detach()  # STE: identity inside
            wq = self.qweight(self.weight, sw)
            return torch.einsum("ok,bkl->bol", wq.reshape(wq.shape[0], -1), xq) + self.bias[None, :, None]
        w = self.tweight()
        n_w = w[0].numel()
        xq = fq_act(self.tinput(x), sa, int(self.zero.item()), 1.0 / math.sqrt(x[0].numel() * 255.0))
        wq = self.qweight(w, sw)
        return F.conv1d(xq, wq, self.tbias(), self.stride, 0, self.dilation, self.groups)

    @torch.no_grad()
    def set_transform(self, alpha: float, use_shift: bool = True):
        """SmoothQuant-b from the calibrated per-channel ranges: shift_c = the range's midpoint (or 0), smooth_c =
        r_c^alpha / max|W[:, c]|^(1 - alpha) with r_c the half range (max |x_c| without the shift); the weight
        scales are refitted to W * smooth."""
        if self.token():
            raise ValueError(f"{self.name}: per-token activations take no input transform")
        cmin, cmax = self.calib_ch
        w = self.weight.detach()
        if use_shift:
            sh = (cmin + cmax) / 2
            r = (cmax - cmin) / 2
        else:
            sh = torch.zeros_like(cmin)
            r = torch.maximum(cmax.abs(), cmin.abs())
        wmax = w.abs().amax((0, 2))
        sm = r.clamp(min=1e-5).pow(alpha) / wmax.clamp(min=1e-5).pow(1 - alpha)
        sm = sm / sm.max()  # the scale of the product is free: keep the largest divisor at 1
        sm = torch.where(sm > 0, sm, torch.ones_like(sm)).clamp(min=1e-4)
        self.shift.copy_(sh)
        self.smooth.copy_(sm)
        self.has_transform.fill_(1.0)
        self.refit_weight_scales()

    @torch.no_grad()
    def refit_weight_scales(self):
        w = self.tweight()
        self.sw0.copy_((w.abs().reshape(w.shape[0], -1).amax(1) / (127 if self.wgroup else self.qmax)).clamp(min=1e-8))
        if self.wgroup:
            self.wmult.copy_(self.group_multipliers(w, self.sw0))
        self.t_w.zero_()

    @torch.no_grad()
    def engine_forward(self, x, sw, sa):
        """The engine's arithmetic step by step (nn/layers.cc make_int8_state, quantize_act; oneDNN 2.x int8
        convolution): u8 codes, an exact integer accumulation, bias in accumulator units with the zero point folded
        in (float32 of a float64 expression), dst = float32(out_scale * float32(acc + bias_acc))."""
        if self.token() and self.group():
            return self.engine_group_forward(x, sw)
        if self.token():
            return self.engine_token_forward(x, sw)
        z = int(self.zero.item())
        if self.transformed():  # nn/layers.cc: v = (x - shift_c) * inv_c, inv_c = 1 / (smooth_c * act_scale)
            inv = (1.0 / (self.smooth * sa))[None, :, None]
            v = (x - self.shift[None, :, None]) * inv
        else:
            v = x * (1.0 / sa)
        q = torch.round(torch.clamp(v, -float(z), 255.0 - float(z))) + float(z)
        qw = self.wcodes(self.tweight(), sw).double()
        acc = F.conv1d(q.double(), qw, None, self.stride, 0, self.dilation, self.groups)  # exact: integers < 2^53
        bias_acc = (self.tbias().double() / (sa.double() * sw.double()) - z * qw.sum((1, 2))).float()
        out_scale = sa * sw  # float32 product, as the engine's out_scale
        return (acc.float() + bias_acc[None, :, None]) * out_scale[None, :, None]

    @torch.no_grad()
    def engine_token_forward(self, x, sw):
        """The engine's per-token int8 conv (nn/layers.h Int8Params::dynamic, nn/conv_token.cc): each im2col row's
        u8 codes, the exact integer sum with the s8 weights, y = (s_t * s_w[o]) * float32(acc - z_t S_o) + b[o]."""
        cols = im2col(x, self.kernel_size[0], self.stride[0], self.dilation[0])
        s, inv, z = token_row_params(cols)
        q = token_codes(cols, inv, z)
        qw = self.wcodes(self.weight, sw)
        qw2 = qw.reshape(qw.shape[0], -1).double()
        acc = torch.einsum("ok,bkl->bol", qw2, q.double())  # exact: integers < 2^53
        d = (acc - z.double() * qw2.sum(1)[None, :, None]).float()  # an int32 in the engine, then float32
        return (s * sw[None, :, None]) * d + self.bias[None, :, None]

    @torch.no_grad()
    def engine_group_forward(self, x, sw):
        """The engine's per-group int8 conv (nn/layers.h Int8Params::act_group, nn/conv_token.cc): each (input step,
        group of N channels) its own u8 codes, the exact integer sum per group and tap with the s8 weights, then for
        each tap k and group g in order a = fma(float(i), s, a), a = fma(-(s z), float(S), a) (each fma as a float64
        sum of the exact product, rounded to float32), y = s_w[o] * a + b[o] (rounded product, then sum)."""
        n = self.group()
        b, cin, tin = x.shape
        ng = cin // n
        xg = self.group_view(x)  # [B * ng, n, T]
        s, inv, z = token_row_params(xg)
        q = token_codes(xg, inv, z).reshape(b, cin, tin).double()
        s = s.reshape(b, ng, tin).double()
        nsz = (-(s.float() * z.reshape(b, ng, tin))).double()  # float32 product, as the engine's
        qw = self.wcodes(self.weight, sw).double()  # [Cout, Cin, K]
        k_, st, dl = self.kernel_size[0], self.stride[0], self.dilation[0]
        tout = (tin - dl * (k_ - 1) - 1) // st + 1
        a = torch.zeros(b, qw.shape[0], tout, dtype=torch.float32)
        for k in range(k_):
            sl = slice(k * dl, k * dl + (tout - 1) * st + 1, st)
            for g in range(ng):
                c = slice(g * n, g * n + n)
                acc = torch.einsum("oc,bcl->bol", qw[:, c, k], q[:, c, sl])  # exact: integers < 2^53
                a = (acc.float().double() * s[:, g, sl][:, None, :] + a.double()).float()
                a = (nsz[:, g, sl][:, None, :] * qw[:, c, k].sum(1)[None, :, None] + a.double()).float()
        return (sw[None, :, None] * a) + self.bias[None, :, None]

    def set_act_range(self, lo: float, hi: float):
        """Engine-style asymmetric min-max: range includes 0, scale (hi - lo) / 255, zero point rint(-lo / s)."""
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        s = max((hi - lo) / 255.0, 1e-8)
        self.sa0.fill_(s)
        self.zero.fill_(float(min(255, max(0, round(-lo / s)))))
        with torch.no_grad():
            self.t_a.zero_()


class _U8State(torch.autograd.Function):
    """The LSTM's fixed u8 grid: (clamp(rint(v * k + 128), 0, 255) - 128) / 127 with k given; STE inside."""

    @staticmethod
    def forward(ctx, v, k):
        u = v * k + 128.0
        q = torch.clamp(torch.round(u), 0.0, 255.0)
        ctx.save_for_backward(u)
        return (q - 128.0) / 127.0

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ((u >= 0) & (u <= 255)).to(g.dtype), None


class _U8Input(torch.autograd.Function):
    """LSTM layer-0 input: codes clamp(rint(x * k + 128), 0, 255), k = 127 / div; returns (q - 128)/127 * div
    (the value the int8 layer sees, in x's units). STE for x, LSQ-style gradient for div."""

    @staticmethod
    def forward(ctx, x, div, gscale: float):
        k = 127.0 / div
        u = x * k + 128.0
        q = torch.clamp(torch.round(u), 0.0, 255.0)
        ctx.save_for_backward(u, q, div)
        ctx.gscale = gscale
        return (q - 128.0) / 127.0 * div

    @staticmethod
    def backward(ctx, g):
        u, q, div = ctx.saved_tensors
        inside = (u >= 0) & (u <= 255)
        gx = g * inside.to(g.dtype)
        # out = (q - 128) / 127 * div; inside, q - 128 ~ x * 127 / div (STE): d/d div = ((q - 128) - (u - 128)) / 127
        dd = torch.where(inside, (q - u) / 127.0, (q - 128.0) / 127.0)
        return gx, (g * dd).sum().reshape(1) * ctx.gscale, None


class QLSTM(nn.Module):
    """The encoder's int8 LSTM (engine: Lstm::set_int8), called like nn.LSTM on (T, B, C). per_matrix: weight
    scales [2 * layers, 4H] (row scales of W_ih_l0, W_hh_l0, W_ih_l1, ...), else [4H] shared by all matrices."""

    def __init__(self, lstm: nn.LSTM, name: str, per_matrix: bool = True):
        super().__init__()
        self.name = name
        self.per_matrix = per_matrix
        self.layers, self.hidden = lstm.num_layers, lstm.hidden_size
        for l in range(self.layers):
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(self, f"{k}_l{l}", nn.Parameter(getattr(lstm, f"{k}_l{l}").detach().clone()))
        self.register_buffer("div0", torch.ones(1))
        self.t_div = nn.Parameter(torch.zeros(1))
        shape = (2 * self.layers, 4 * self.hidden) if per_matrix else (4 * self.hidden,)
        self.register_buffer("sw0", torch.ones(shape))
        self.t_w = nn.Parameter(torch.zeros(shape))
        self.quant = True
        self.exact = False  # engine_forward (evaluation)
        self.calib: Optional[List[float]] = None
        self.refit_weight_scales()

    def divisor(self):
        return self.div0 * torch.exp(self.t_div)

    def weight_scales(self):
        return self.sw0 * torch.exp(self.t_w)

    def mats(self, div):
        m = []
        for l in range(self.layers):
            wi = getattr(self, f"weight_ih_l{l}")
            m.append(wi * div if l == 0 else wi)
            m.append(getattr(self, f"weight_hh_l{l}"))
        return m

    @torch.no_grad()
    def refit_weight_scales(self):
        """Symmetric min-max per row of each matrix, or per gate row over every layer's matrices (shared), as
        ptq/calibrate.cc quantize_lstm."""
        m = self.mats(self.divisor())
        s = torch.stack([x.abs().amax(1) for x in m]) / 127.0
        if not self.per_matrix:
            s = s.amax(0)
        self.sw0.copy_(torch.where(s > 0, s, torch.ones_like(s)))
        self.t_w.zero_()

    def forward(self, seq, state=None):
        T, B, _ = seq.shape
        if self.calib is not None:
            self.calib[0] = max(self.calib[0], float(seq.abs().max()))
        if not self.quant:
            return self.run(seq, [getattr(self, f"{k}_l{l}") for l in range(self.layers) for k in ("weight_ih", "weight_hh")],
                            seq, None), None
        div = self.divisor()
        ws = self.weight_scales()
        if self.exact:
            return self.engine_forward(seq, div, ws), None
        n_w = sum(m.shape[1] for m in self.mats(div.detach()))
        gsw = 1.0 / math.sqrt(n_w * 127.0)
        wq = [fq_weight(m, self.matrix_scales(ws, i), 127, gsw) for i, m in enumerate(self.mats(div))]
        x = _U8Input.apply(seq, div, 1.0 / math.sqrt(seq[0].numel() * 255.0)) / div  # the grid in divided units
        return self.run(x, wq, seq, torch.tensor(127.0)), None

    def matrix_scales(self, ws, i: int):
        """The row scales of matrix i (W_ih_l0, W_hh_l0, W_ih_l1, ...)."""
        return ws[i] if self.per_matrix else ws

    @torch.no_grad()
    def engine_forward(self, seq, div, ws):
        """The int8 LSTM's arithmetic (the integer emulation of nn/ptq_layers_test.cc LstmInt8): u8 codes, exact
        integer dot products, gates / cell / hidden state in float64, each hidden state requantized to u8."""
        T, B, _ = seq.shape
        H = self.hidden
        k = 127.0 / div
        x = torch.clamp(torch.round(seq * k + 128.0), 0.0, 255.0).double() - 128.0
        mats = [weight_codes(m, self.matrix_scales(ws, i)).double() for i, m in enumerate(self.mats(div))]
        wsd = [self.matrix_scales(ws, i).double() / 127.0 for i in range(len(mats))]
        for l in range(self.layers):
            b = getattr(self, f"bias_ih_l{l}").double() + getattr(self, f"bias_hh_l{l}").double()
            gx = x @ mats[2 * l].t()
            hq = seq.new_zeros(B, H, dtype=torch.float64)
            c = seq.new_zeros(B, H, dtype=torch.float64)
            outs = []
            for t in range(T):
                z = gx[t] * wsd[2 * l] + (hq @ mats[2 * l + 1].t()) * wsd[2 * l + 1] + b  # integer sums apart
                c = torch.sigmoid(z[:, H:2 * H]) * c + torch.sigmoid(z[:, :H]) * torch.tanh(z[:, 2 * H:3 * H])
                h = torch.sigmoid(z[:, 3 * H:]) * torch.tanh(c)
                hq = torch.clamp(torch.round(h.float() * 127.0 + 128.0), 0.0, 255.0).double() - 128.0
                outs.append(hq)
            x = torch.stack(outs)
        return (x.float() * (1.0 / 127.0)).to(seq.dtype)

    def run(self, x, mats, seq, k):
        """The recurrence; k = 127 quantizes every hidden state on the u8 grid, None keeps it float."""
        T, B, _ = x.shape
        H = self.hidden
        for l in range(self.layers):
            wih, whh = mats[2 * l], mats[2 * l + 1]
            b = getattr(self, f"bias_ih_l{l}") + getattr(self, f"bias_hh_l{l}")
            gx = F.linear(x, wih, b)  # (T, B, 4H): the input part of every step at once
            h = seq.new_zeros(B, H)
            c = seq.new_zeros(B, H)
            outs = []
            for t in range(T):
                z = gx[t] + F.linear(h, whh)
                i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                if k is not None:
                    h = _U8State.apply(h, k)
                outs.append(h)
            x = torch.stack(outs)
        return x


def _engine_expm1_nonpositive(x: torch.Tensor) -> torch.Tensor:
    """nn/layer_support.h expm1_nonpositive in float32, operation by operation (Cody-Waite + polynomial)."""
    f = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    x = torch.clamp(x, max=0.0).clamp(min=-87.0)
    n = torch.floor(x * f(1.44269504088896341) + f(0.5))
    r = (x - n * f(0.693359375)) + n * f(2.12194440e-4)
    p = torch.full_like(r, 1.9875691500e-4)
    for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        p = p * r + f(c)
    em1 = p * r * r + r  # exp(r) - 1, the 1 never added (expm1_nonpositive)
    scale = ((n.to(torch.int32) + 127) << 23).view(torch.float32)
    return em1 * scale + (scale - f(1.0))


class EngineElu(nn.Module):
    """ELU as the engine's apply_act computes it (expm1_nonpositive(v) for v <= 0)."""

    def forward(self, x):
        return torch.where(x > 0, x, _engine_expm1_nonpositive(x))


def set_engine_exact(model: WavTokenizer, on: bool = True):
    """Evaluation in the engine's arithmetic: int8 convs step by step (QConv1d.engine_forward) and the encoder's
    ELUs as the engine computes them."""
    for m in qat_modules(model):
        m.exact = on
    enc = model.feature_extractor.encodec.encoder
    for mod in enc.modules():
        if isinstance(mod, nn.Sequential):
            for i, c in enumerate(mod):
                if on and type(c) is nn.ELU:
                    mod[i] = EngineElu()
                elif not on and isinstance(c, EngineElu):
                    mod[i] = nn.ELU(1.0)


def qat_modules(model: WavTokenizer):
    return [m for m in model.feature_extractor.encodec.encoder.modules() if isinstance(m, (QConv1d, QLSTM))]


def conv_names(model: WavTokenizer) -> List[str]:
    """The encoder's SEANet convs (NormConv1d module names relative to the encoder, e.g. `model.1.block.3.conv`)."""
    return [n for n, m in model.feature_extractor.encodec.encoder.named_modules() if isinstance(m, NormConv1d)]


def _is_float_conv(name: str, float_convs) -> bool:
    """name (`model.1.block.3.conv`) matches an entry of float_convs: the module name, or a prefix of it ending at a
    dot boundary (`model.1` keeps the whole first residual block float)."""
    for f in float_convs or ():
        f = f.strip().removesuffix(".conv.conv").removesuffix(".conv")
        if f and (name == f + ".conv" or name.startswith(f + ".")):
            return True
    return False


def act_group(act_mode: str) -> int:
    """0 for static and token, N for frameN; ValueError otherwise."""
    if act_mode in ("static", "token"):
        return 0
    if act_mode.startswith("frame") and act_mode[5:].isdigit() and int(act_mode[5:]) > 0:
        return int(act_mode[5:])
    raise ValueError(f"act_mode must be static, token or frameN (N > 0), not {act_mode!r}")


def act_mode_arg(v: str) -> str:
    """argparse type of --act-mode: the mode itself, checked by act_group."""
    try:
        act_group(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    return v


def prepare_qat(model: WavTokenizer, convs: bool = True, lstm: bool = True, wbits: int = 8,
                float_convs=None, lstm_scales: str = "per_matrix", act_mode: str = "static",
                wgroup: int = 0) -> WavTokenizer:
    """Replace the encoder's convs / LSTM by their fake-quantized versions (in place; scales not yet calibrated).
    Convs named in float_convs (see _is_float_conv) stay float (and are still fine-tuned). act_mode token: the int8
    convs quantize their activations per token (QConv1d.set_token); frameN: per input step and group of N channels
    (the engine's Int8Params::act_group)."""
    group = act_group(act_mode)
    enc = model.feature_extractor.encodec.encoder
    for name, mod in list(enc.named_modules()):
        if convs and isinstance(mod, NormConv1d) and not _is_float_conv(name, float_convs):
            mod.conv = QConv1d(mod.conv, ENC + name + ".conv", wbits, wgroup)
            if act_mode != "static":
                mod.conv.set_token(True, group)
        elif lstm and isinstance(mod, SLSTM):
            mod.lstm = QLSTM(mod.lstm, ENC + name + ".lstm", lstm_scales == "per_matrix")
    return model


@torch.no_grad()
def mse_range(v: torch.Tensor, lo: float, hi: float) -> Tuple[float, float]:
    """The min-max range shrunk by the factor (1 .. 0.05) whose u8 quantization of the sample v has the lowest
    mean squared error (the engine's act_range: mse searches the same way)."""
    best, best_r = None, (lo, hi)
    for a in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.33, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05):
        l, h = min(lo * a, 0.0), max(hi * a, 0.0)
        s = max((h - l) / 255.0, 1e-8)
        z = float(min(255, max(0, round(-l / s))))
        q = torch.clamp(torch.round(v / s), -z, 255 - z) * s
        err = float((q - v).pow(2).mean())
        if best is None or err < best:
            best, best_r = err, (l, h)
    return best_r


@torch.no_grad()
def calibrate(model: WavTokenizer, batches: List[torch.Tensor], act_init: str = "minmax",
              smooth_alpha: Optional[float] = None, smooth_shift: bool = True):
    """Activation ranges from the float encoder (min/max over every frame, like `wavtok quantize` minmax, or the
    MSE-optimal shrink of it), the LSTM divisor from max |x|; weight scales min-max. smooth_alpha: every int8
    conv gets a SmoothQuant-b input transform (QConv1d.set_transform) from a first pass, and its range is
    calibrated on the transformed input in a second."""
    qm = qat_modules(model)
    enc = model.feature_extractor.encodec.encoder

    def run_pass():
        for m in qm:
            m.quant = False
            m.calib = [math.inf, -math.inf] if isinstance(m, QConv1d) else [0.0]
            if isinstance(m, QConv1d):
                m.calib_rows, m.calib_ch = [], None
        for b in batches:
            enc(b.unsqueeze(1))

    run_pass()
    if smooth_alpha is not None:
        for m in qm:
            if isinstance(m, QConv1d) and not m.token():
                m.set_transform(smooth_alpha, smooth_shift)
        run_pass()
    for m in qm:
        if isinstance(m, QConv1d):
            if m.token():
                pass  # per-token: no static range
            elif act_init == "mse":
                m.set_act_range(*mse_range(torch.cat(m.calib_rows), *m.calib))
            else:
                m.set_act_range(*m.calib)
            m.calib_rows, m.calib_ch = [], None
        else:
            a = m.calib[0] if m.calib[0] > 0 else 1.0
            m.div0.fill_(a)
            m.t_div.zero_()
            m.refit_weight_scales()
        m.calib = None
        m.quant = True


@torch.no_grad()
def gptq_round(w: torch.Tensor, step: torch.Tensor, qmax: int, h: torch.Tensor, damp: float = 0.01,
               act_order: bool = True) -> torch.Tensor:
    """Rounding of the weight rows w [O, N] to the fixed grid step [O, N] (codes in [-qmax, qmax]) that lowers the
    output error E|(W - Q) x|^2 under the input second moment h = E[x x^T] [N, N] (GPTQ, Frantar et al. 2023, our
    own code): the columns are rounded one at a time, largest h_jj first with act_order, and each one's error is
    pushed onto the columns not yet rounded through the inverse of h (its upper Cholesky factor). Returns q * step."""
    n = w.shape[1]
    h = h.double().clone()
    dead = torch.diagonal(h) <= 0  # inputs that never move: any code does
    h[dead, dead] = 1.0
    h += damp * float(torch.diagonal(h).mean()) * torch.eye(n, dtype=h.dtype)
    perm = torch.argsort(torch.diagonal(h), descending=True) if act_order else torch.arange(n)
    h = h[perm][:, perm]
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    r = w.double()[:, perm].clone()
    st = step.double()[:, perm]
    q = torch.zeros_like(r)
    for j in range(n):
        q[:, j] = torch.clamp(torch.round(r[:, j] / st[:, j]), -qmax, qmax) * st[:, j]
        err = (r[:, j] - q[:, j]) / u[j, j]
        r[:, j + 1:] -= err[:, None] * u[j, j + 1:][None, :]
    out = torch.empty_like(q)
    out[:, perm] = q
    return out.to(w.dtype)


@torch.no_grad()
def gptq_init(model: WavTokenizer, batches: List[torch.Tensor], damp: float = 0.01,
              clips: Sequence[float] = (1.0,)) -> Dict[str, Tuple[float, float]]:
    """`--w-init gptq`: every quantized conv's weight (int8 or below) set to its GPTQ rounding (gptq_round) on the
    grid of its calibrated row scale (and group multipliers), from the im2col second moment of its input over the
    calibration batches (the float encoder's activations). The weight then sits on the grid, so the fake-quant
    reproduces it.
    Returns per conv the relative output error E|(W - Q) x|^2 / E|W x|^2 of plain rounding and of GPTQ."""
    enc = model.feature_extractor.encodec.encoder
    low = [m for m in qat_modules(model) if isinstance(m, QConv1d) and m.quant]
    mods = qat_modules(model)
    hs = {id(m): None for m in low}
    cnt = {id(m): 0 for m in low}

    def hook(m, inp):
        x = m.tinput(inp[0])
        cols = im2col(x, m.kernel_size[0], m.stride[0], m.dilation[0])  # [B, N, L]
        c = cols.permute(1, 0, 2).reshape(cols.shape[1], -1).double()
        hs[id(m)] = c @ c.T if hs[id(m)] is None else hs[id(m)] + c @ c.T
        cnt[id(m)] += c.shape[1]

    handles = [m.register_forward_pre_hook(hook) for m in low]
    was = [m.quant for m in mods]
    for m in mods:
        m.quant = False
    try:
        for b in batches:
            enc(b.unsqueeze(1))
    finally:
        for hd in handles:
            hd.remove()
        for m, q in zip(mods, was):
            m.quant = q
    return {m.name: m.set_gptq_weight(hs[id(m)] / max(cnt[id(m)], 1), damp, clips) for m in low}


def scale_params(model) -> List[Tuple[str, nn.Parameter]]:
    """(quantizer name, scale parameter): one weight-scale vector and one activation scale per quantizer."""
    out = []
    for m in qat_modules(model):
        if isinstance(m, QConv1d):
            out += [(m.name + ".weight_scale", m.t_w)] + ([] if m.token() else [(m.name + ".act_scale", m.t_a)])
        else:
            out += [(m.name + ".weight_scale", m.t_w), (m.name + ".act_smooth", m.t_div)]
    return out


@torch.no_grad()
def export_wtk(model: WavTokenizer, base: str, out: str) -> Dict[str, int]:
    """The base .wtk (the float model, or its int8-decoder `wavtok quantize` output) with every encoder tensor
    replaced by the fine-tuned model's: int8 layers as s8 codes + weight_scale + act_quant (+ act_smooth for the
    LSTM), exactly the codes the fake-quant forward used. Returns counts."""
    _, _, ytext, tensors = read_wtk_raw(base)
    new: Dict[str, np.ndarray] = {}
    n_conv = n_lstm = 0
    for m in qat_modules(model):
        if isinstance(m, QConv1d) and not m.quant:  # left float
            new[m.name + ".weight"] = m.weight.numpy().astype(np.float32)
            new[m.name + ".bias"] = m.bias.numpy().astype(np.float32)
        elif isinstance(m, QConv1d):
            sw, sa = m.scales()
            new[m.name + ".weight"] = m.wcodes(m.tweight(), sw).numpy()
            new[m.name + ".bias"] = m.tbias().numpy().astype(np.float32)
            if m.transformed():
                new[m.name + ".act_shift"] = m.shift.numpy().astype(np.float32)
                new[m.name + ".act_smooth"] = m.smooth.numpy().astype(np.float32)
            new[m.name + ".weight_scale"] = sw.numpy().astype(np.float32)
            if m.token():  # per-token activations: the placeholder range and the marker (models/quantized.h)
                new[m.name + ".act_quant"] = np.array([1.0, 0.0], dtype=np.float32)
                new[m.name + ".act_dynamic"] = np.array([1.0], dtype=np.float32)
                if m.group():  # act_mode frameN: a range per input step and group (Int8Params::act_group)
                    new[m.name + ".act_group"] = np.array([float(m.group())], dtype=np.float32)
            else:
                new[m.name + ".act_quant"] = np.array([float(sa), float(m.zero)], dtype=np.float32)
            n_conv += 1
        elif not m.quant:
            for l in range(m.layers):
                for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    new[f"{m.name}.{k}_l{l}"] = getattr(m, f"{k}_l{l}").numpy().astype(np.float32)
        else:
            div, ws = m.divisor(), m.weight_scales()
            for l, mat in enumerate(m.mats(div)):
                kind = "weight_ih" if l % 2 == 0 else "weight_hh"
                new[f"{m.name}.{kind}_l{l // 2}"] = weight_codes(mat, m.matrix_scales(ws, l)).numpy()
            for l in range(m.layers):
                for k in ("bias_ih", "bias_hh"):
                    new[f"{m.name}.{k}_l{l}"] = getattr(m, f"{k}_l{l}").numpy().astype(np.float32)
            new[m.name + ".weight_scale"] = ws.reshape(-1).numpy().astype(np.float32)  # [4H] or [2L * 4H]
            new[m.name + ".act_quant"] = np.array([1.0 / 127.0, 128.0], dtype=np.float32)
            new[m.name + ".act_smooth"] = np.array([float(div)], dtype=np.float32)
            n_lstm += 1
    # encoder layers left float (--no-lstm / --no-convs): their fine-tuned float weights, weight norm folded
    enc = model.feature_extractor.encodec.encoder
    for name, mod in enc.named_modules():
        if isinstance(mod, nn.Conv1d) and hasattr(mod, "weight_g"):
            new[ENC + name + ".weight"] = torch._weight_norm(mod.weight_v, mod.weight_g, 0).numpy().astype(np.float32)
            new[ENC + name + ".bias"] = mod.bias.numpy().astype(np.float32)
        elif isinstance(mod, nn.LSTM):
            for k, v in mod.named_parameters():
                new[ENC + name + "." + k] = v.detach().numpy().astype(np.float32)
    # the base's encoder tensors are all replaced (a base made by a SQ-b recipe may have act_shift/act_smooth)
    keep = [(n, a) for n, a in tensors if not n.startswith(ENC)]
    keep += sorted(new.items())
    write_wtk_raw(out, ytext, keep)
    return {"int8_convs": n_conv, "int8_lstms": n_lstm}


def load_qat_model(init_wtk: str, convs=True, lstm=True, wbits=8, float_convs=None,
                   lstm_scales: str = "per_matrix", act_mode: str = "static", wgroup: int = 0) -> WavTokenizer:
    from wtk_io import load_wtk_as_reference
    m = load_wtk_as_reference(init_wtk)
    return prepare_qat(m, convs, lstm, wbits, float_convs, lstm_scales, act_mode, wgroup)


@torch.no_grad()
def load_from_run(model: WavTokenizer, ckpt: str) -> int:
    """Initialise model from another run's checkpoint (`--init-run`): every tensor of the same name and shape
    (weights, biases, learned log-scales, calibrated ranges and zero points); a conv that is float here but was int8
    there gets that run's fine-tuned weight as weight_v with weight_g = its norm. Returns the tensors copied."""
    sd = torch.load(ckpt, map_location="cpu", weights_only=False)["model"]
    own = model.state_dict()
    n = 0
    for k, v in own.items():
        if k in sd and sd[k].shape == v.shape:
            v.copy_(sd[k])
            n += 1
        elif k.endswith(".weight_v") and k[:-2] in sd and sd[k[:-2]].shape == v.shape:
            w = sd[k[:-2]]
            v.copy_(w)
            own[k[:-1] + "g"].copy_(w.reshape(w.shape[0], -1).norm(dim=1).view_as(own[k[:-1] + "g"]))
            n += 2
    model.load_state_dict(own)
    return n


# --------------------------------------------------------------------------- loss and tokens
def codebook(model: WavTokenizer) -> torch.Tensor:
    return model.feature_extractor.quantizer.vq.layers[0]._codebook.embed


def nearest_codes(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """z (B, D, F) -> codes (B, F); exact float64 nearest codeword (the engine's search is exact)."""
    x = z.transpose(1, 2).reshape(-1, z.shape[1]).double()
    ed = e.double()
    d = (x * x).sum(1, keepdim=True) - 2 * x @ ed.t() + (ed * ed).sum(1)[None]
    return d.argmin(1).view(z.shape[0], z.shape[2])


def distill_loss(zs: torch.Tensor, zt: torch.Tensor, e: torch.Tensor, margin: float, hinge_w: float):
    """Latent MSE (relative to the float latents' energy) + hinge on the relative gap between the distance to the
    float model's code and to the nearest other code."""
    mse = (zs - zt).pow(2).mean() / zt.pow(2).mean().clamp(min=1e-12)
    x = zs.transpose(1, 2).reshape(-1, zs.shape[1])
    with torch.no_grad():
        tgt = nearest_codes(zt, e).reshape(-1)
    d = (x * x).sum(1, keepdim=True) - 2 * x @ e.t() + (e * e).sum(1)[None]
    dt = d.gather(1, tgt[:, None])[:, 0]
    d_other = d.scatter(1, tgt[:, None], float("inf")).min(1).values
    rel = (dt - d_other) / d_other.detach().clamp(min=1e-6)
    hinge = F.relu(rel + margin).mean()
    with torch.no_grad():
        agree = float((d.argmin(1) == tgt).float().mean())
    return mse + hinge_w * hinge, {"mse": float(mse), "hinge": float(hinge), "agree": agree}


# --------------------------------------------------------------------------- training
def set_frozen_grads(params, frozen):
    for p, f in zip(params, frozen):
        if f:
            p.grad = None


def train(args):
    from train import CropSampler, read_filelist, read_wav_int16, atomic_save  # noqa: E402
    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    ckpt_path = os.path.join(args.run, "last.ckpt")
    text_log = os.path.join(args.run, "train.log")
    log_path = os.path.join(args.run, "log.tsv")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(text_log, "a") as f:
            f.write(line + "\n")

    cfg = dict(method=args.method, lr=args.lr, scale_lr=args.scale_lr, batch=args.batch, segment=args.segment,
               margin=args.margin, hinge=args.hinge, rho=args.rho, window=args.window, freeze_above=args.freeze_above,
               convs=not args.no_convs, lstm=not args.no_lstm, wbits=args.wbits, init_wtk=args.init_wtk,
               seed=args.seed, calib_batches=args.calib_batches, max_steps=args.total_steps, act_init=args.act_init,
               gain_db=list(args.gain_db), peak_db=list(args.peak_db) if args.peak_db else None)
    # settings added later: recorded only when used, so that older runs still resume
    extra = dict(float_convs=sorted(c for c in args.float_convs.split(",") if c), init_run=args.init_run,
                 lstm_frozen=args.lstm_frozen, freeze_above_scalar=args.freeze_above_scalar,
                 warmup_steps=args.warmup_steps, smooth_alpha=args.smooth_alpha, smooth_no_shift=args.smooth_no_shift,
                 float_frozen=args.float_frozen, lstm_scales=args.lstm_scales, act_mode=args.act_mode,
                 wgroup=args.wgroup, w_init=args.w_init,
                 gptq_clips=list(args.gptq_clips))
    # lstm_scales: runs made before per-matrix scales existed recorded nothing and used shared scales
    defaults = dict(float_convs=[], init_run=None, lstm_frozen=False, freeze_above_scalar=None, warmup_steps=0,
                    smooth_alpha=None, smooth_no_shift=False, float_frozen=False, lstm_scales="shared",
                    act_mode="static", wgroup=0, w_init="rtn",
                    gptq_clips=[1.0])
    if args.act_mode != "static" and args.smooth_alpha is not None:
        raise SystemExit("--act-mode token takes no input transform (--smooth-alpha)")
    cfg.update({k: v for k, v in extra.items() if v != defaults[k]})
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    from wtk_io import load_wtk_as_reference
    teacher = load_wtk_as_reference(args.init_wtk)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    model = prepare_qat(load_wtk_as_reference(args.init_wtk), cfg["convs"], cfg["lstm"], cfg["wbits"],
                        cfg.get("float_convs"), cfg.get("lstm_scales", "shared"), cfg.get("act_mode", "static"),
                        cfg.get("wgroup", 0))
    enc = model.feature_extractor.encodec.encoder
    t_enc = teacher.feature_extractor.encodec.encoder
    e = codebook(teacher).detach()
    sampler = CropSampler(args.train_filelist, int(args.segment * 24000) // 320 * 320, gain_db=tuple(args.gain_db),
                          peak_db=tuple(args.peak_db) if args.peak_db else None)
    eval_files = read_filelist(args.eval_filelist)[: args.eval_clips]
    eval_audio = [torch.from_numpy(read_wav_int16(p).astype(np.float32) / 32768.0)[None] for p in eval_files]
    eval_audio = [x[:, : x.shape[1] // 320 * 320] for x in eval_audio]
    with torch.no_grad():
        eval_ref = [nearest_codes(t_enc(x[:, None]), e) for x in eval_audio]

    scales = scale_params(model)
    fixed = set()
    if args.lstm_frozen:  # the LSTM stays as calibrated (PTQ int8): neither its weights nor its scales train
        fixed = {id(p) for m in qat_modules(model) if isinstance(m, QLSTM) for p in m.parameters()}
        scales = [(n, p) for n, p in scales if id(p) not in fixed]
    if args.float_frozen:  # the float convs keep the float model's weights; only the int8 layers train
        fixed |= {id(p) for mod in enc.modules() if isinstance(mod, nn.Conv1d) for p in mod.parameters()}
    scale_ids = {id(p) for _, p in scales}
    weights = [p for n, p in model.named_parameters() if n.startswith(ENC) and id(p) not in scale_ids
               and id(p) not in fixed]
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith(ENC) and id(p) not in fixed)
    opt = torch.optim.Adam([{"params": weights, "lr": args.lr, "base": args.lr},
                            {"params": [p for _, p in scales], "lr": args.scale_lr, "base": args.scale_lr}])
    step = 0
    hist = [deque(maxlen=args.window) for _ in scales]
    frozen = [False] * len(scales)
    freeze_steps = [0] * len(scales)
    if os.path.exists(ckpt_path) and not args.restart:
        st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if st["cfg"] != cfg and not args.allow_config_change:
            diff = [k for k in cfg if st["cfg"].get(k) != cfg[k]]
            sys.exit(f"{ckpt_path} was written with other settings ({', '.join(diff)}); use another --run or --restart")
        load_state(model, st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        rng.bit_generator.state = st["np_rng"]
        torch.set_rng_state(st["torch_rng"])
        random.setstate(st["py_rng"])
        hist = [deque(h, maxlen=args.window) for h in st["hist"]]
        frozen, freeze_steps = st["frozen"], st["freeze_steps"]
        log(f"resumed {ckpt_path} at step {step}")
    else:
        calib = [sampler.batch(rng, args.batch) for _ in range(args.calib_batches)]
        calibrate(model, calib, args.act_init, args.smooth_alpha, not args.smooth_no_shift)
        if args.w_init == "gptq":
            gb = [sampler.batch(rng, args.batch) for _ in range(args.gptq_batches)]
            for name, (a, b) in gptq_init(model, gb, clips=args.gptq_clips).items():
                log(f"GPTQ {name}: output error {10 * math.log10(a):.2f} dB (rounding) -> {10 * math.log10(b):.2f} dB "
                    f"on {args.gptq_batches} batches")
        if args.init_run:
            n_init = load_from_run(model, os.path.join(args.init_run, "last.ckpt"))
            log(f"initialised {n_init} tensors from {args.init_run}/last.ckpt")
        log(f"initialised from {args.init_wtk}: {sum(isinstance(m, QConv1d) for m in qat_modules(model))} int8 convs "
            f"(float: {', '.join(cfg.get('float_convs') or []) or 'none'}), "
            f"{sum(isinstance(m, QLSTM) for m in qat_modules(model))} int8 LSTMs, scales min-max calibrated on "
            f"{args.calib_batches} batches ({args.act_init}); method {args.method}")
        with open(log_path, "w") as f:
            f.write("step\twall_s\tloss\tmse\thinge\tagree_batch\tfrozen\tsteps_per_s\teval_agree\n")

    def save(reason):
        atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cfg": cfg,
                     "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "py_rng": random.getstate(),
                     "hist": [list(h) for h in hist], "frozen": frozen, "freeze_steps": freeze_steps}, ckpt_path)
        log(f"checkpoint step {step} -> {ckpt_path} ({reason})")

    @torch.no_grad()
    def eval_agree():
        n = k = 0
        for x, ref in zip(eval_audio, eval_ref):
            c = nearest_codes(enc(x[:, None]), e)
            n += ref.numel()
            k += int((c == ref).sum())
        return k / max(n, 1)

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__("flag", True))
    signal.signal(signal.SIGINT, lambda *a: stop.__setitem__("flag", True))
    t_start = time.time()
    t_ckpt = time.time()
    acc: Dict[str, float] = {}
    n_acc = 0
    t_win = time.time()
    if step == 0:
        a0 = eval_agree()
        with open(log_path, "a") as f:
            f.write(f"0\t0\tnan\tnan\tnan\tnan\t0\tnan\t{a0:.5f}\n")
        log(f"step 0 (PTQ: the calibrated scales, no fine-tuning): eval token agreement {a0 * 100:.2f}% on {len(eval_audio)} clips")
    scale_list = [p for _, p in scales]
    while step < args.total_steps and not stop["flag"]:
        frac = min(1.0, step / max(args.total_steps, 1))
        for g in opt.param_groups:
            g["lr"] = g["base"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
            if args.warmup_steps:
                g["lr"] *= min(1.0, (step + 1) / args.warmup_steps)
        audio = sampler.batch(rng, args.batch)
        with torch.no_grad():
            zt = t_enc(audio.unsqueeze(1))
        zs = enc(audio.unsqueeze(1))
        loss, parts = distill_loss(zs, zt, e, args.margin, args.hinge)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.method == "gaqat":
            g_task = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in scale_list]
            gw = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in weights]
            norm = torch.sqrt(sum((g * g).sum() for g in gw)).clamp(min=1e-12)
            eps = [args.rho * g / norm for g in gw]
            with torch.no_grad():
                for p, d in zip(weights, eps):
                    p.add_(d)
            opt.zero_grad(set_to_none=True)
            zs2 = enc(audio.unsqueeze(1))
            loss2, _ = distill_loss(zs2, zt, e, args.margin, args.hinge)
            loss2.backward()
            with torch.no_grad():
                for p, d in zip(weights, eps):
                    p.sub_(d)
            parts["sharp"] = float(loss2 - loss)
            for i, (p, gt) in enumerate(zip(scale_list, g_task)):
                gs = p.grad if p.grad is not None else torch.zeros_like(p)
                gf = gs - gt  # the flatness (sharpness) term's gradient
                m = (gt != 0) & (gf != 0)
                dis = float(((torch.sign(gt) != torch.sign(gf)) & m).sum()) / max(int(m.sum()), 1)
                hist[i].append(dis)
                avg = sum(hist[i]) / len(hist[i])
                thr = args.freeze_above
                if p.numel() == 1 and args.freeze_above_scalar is not None:
                    thr = args.freeze_above_scalar
                frozen[i] = len(hist[i]) >= min(args.window, 5) and avg > thr
                if frozen[i]:
                    freeze_steps[i] += 1
            set_frozen_grads(scale_list, frozen)
        opt.step()
        step += 1
        parts["loss"] = float(loss)
        parts["frozen"] = float(sum(frozen))
        for k2, v in parts.items():
            acc[k2] = acc.get(k2, 0.0) + v
        n_acc += 1
        if step % args.log_every == 0 or step == args.total_steps:
            now = time.time()
            m = {k2: v / n_acc for k2, v in acc.items()}
            ea = eval_agree() if step % args.eval_every == 0 or step == args.total_steps else float("nan")
            sps = n_acc / max(now - t_win, 1e-9)
            with open(log_path, "a") as f:
                f.write(f"{step}\t{now - t_start:.1f}\t{m['loss']:.5f}\t{m['mse']:.5f}\t{m['hinge']:.5f}\t"
                        f"{m['agree']:.4f}\t{m['frozen']:.1f}\t{sps:.3f}\t{ea:.5f}\n")
            log(f"step {step} loss {m['loss']:.4f} mse {m['mse']:.4f} hinge {m['hinge']:.4f} batch agree "
                f"{m['agree'] * 100:.2f}% frozen {m['frozen']:.1f}/{len(scales)}"
                + (f" eval agree {ea * 100:.2f}%" if ea == ea else "") + f" {sps:.2f} steps/s")
            acc, n_acc, t_win = {}, 0, now
        if time.time() - t_ckpt > 60 * args.checkpoint_minutes:
            save("periodic")
            t_ckpt = time.time()
        if args.max_minutes is not None and time.time() - t_start > 60 * args.max_minutes:
            break
    save("signal" if stop["flag"] else "end")
    if args.method == "gaqat":
        log("frozen steps per quantizer: " + json.dumps({n: s for (n, _), s in zip(scales, freeze_steps) if s}))


def load_state(model: WavTokenizer, sd):
    """load_state_dict; a checkpoint from before the input transform existed has no shift/smooth buffers (none)."""
    own = model.state_dict()
    sd = dict(sd)
    for k, v in own.items():
        if k not in sd and k.rsplit(".", 1)[-1] in ("shift", "smooth", "has_transform", "act_token", "act_group",
                                                      "wmult"):
            sd[k] = v
    model.load_state_dict(sd)


def load_run(run: str) -> WavTokenizer:
    st = torch.load(os.path.join(run, "last.ckpt"), map_location="cpu", weights_only=False)
    cfg = st["cfg"]
    model = load_qat_model(cfg["init_wtk"], cfg["convs"], cfg["lstm"], cfg["wbits"], cfg.get("float_convs"),
                           cfg.get("lstm_scales", "shared"), cfg.get("act_mode", "static"), cfg.get("wgroup", 0))
    load_state(model, st["model"])
    model.eval()
    return model, st


def apply_recipe(parser: argparse.ArgumentParser, path: str):
    """Sets parser defaults from a recipe's `train:` map (unknown keys are an error naming the file)."""
    import yaml
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    opts = doc.get("train")
    if not isinstance(opts, dict):
        raise SystemExit(f"{path}: no `train:` map")
    dests = {a.dest for a in parser._actions}
    d = {}
    for k, v in opts.items():
        key = str(k).replace("-", "_")
        if key not in dests or key == "recipe":
            raise SystemExit(f"{path}: unknown option `{k}` in train:")
        if key == "float_convs" and isinstance(v, list):
            v = ",".join(v)
        d[key] = v
    parser.set_defaults(**d)


def build_parser():
    """(the whole parser, its `train` subparser): apply_recipe sets the latter's defaults."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="fine-tune (resumes runs/<name>/last.ckpt)")
    t.add_argument("--recipe", default=None, help="YAML recipe (configs/quant/qat/*.yaml): its `train:` map sets "
                   "these options' defaults (names as here, without the dashes); the command line overrides it")
    t.add_argument("--init-wtk", default="codec/default/wavtok-default.wtk")
    t.add_argument("--run", required=True)
    t.add_argument("--method", choices=["lsq", "gaqat"], default="gaqat")
    t.add_argument("--train-filelist", default="data/train/filelist")
    t.add_argument("--eval-filelist", default="data/eval/filelist")
    t.add_argument("--eval-clips", type=int, default=4)
    t.add_argument("--lr", type=float, default=5e-5, help="Adam lr of the weights")
    t.add_argument("--scale-lr", type=float, default=5e-3, help="Adam lr of the log-scales")
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--segment", type=float, default=1.0, help="crop seconds")
    t.add_argument("--margin", type=float, default=0.1, help="hinge: relative gap to the runner-up code")
    t.add_argument("--hinge", type=float, default=1.0, help="hinge weight")
    t.add_argument("--rho", type=float, default=0.01, help="GAQAT: SAM radius (weights)")
    t.add_argument("--window", type=int, default=20, help="GAQAT: steps averaged per quantizer")
    t.add_argument("--freeze-above", type=float, default=0.5, help="GAQAT: freeze a quantizer's scales above this "
                   "mean fraction of scale elements whose task and flatness gradients disagree in sign")
    t.add_argument("--freeze-above-scalar", type=float, default=None,
                   help="GAQAT: the threshold for quantizers with one scale (activation scales, the LSTM divisor); "
                        "default --freeze-above. A scalar's disagreement is 0 or 1 per step, so its window mean "
                        "crosses 0.5 by chance about half the time when the signs are unrelated")
    t.add_argument("--wbits", type=int, default=8)
    t.add_argument("--wgroup", type=int, default=0, help="below 8 bits: groups of this many weights of a row (Cin*K, "
                   "c major), each an integer multiplier of the row scale (quant/lowbit.h's two-level scale); 0: one "
                   "scale per row")
    t.add_argument("--w-init", choices=["rtn", "gptq"], default="rtn", help="the quantized convs start from "
                   "their weights rounded to nearest, or from their GPTQ rounding (output-error aware, see gptq_init)")
    t.add_argument("--gptq-batches", type=int, default=64, help="--w-init gptq: batches of the input statistics")
    t.add_argument("--gptq-clips", type=float, nargs="+", default=[1.0], help="--w-init gptq: row scales tried, as "
                   "factors of the min-max one; each row keeps the one with the lowest output error")
    t.add_argument("--float-convs", default="", help="comma list of encoder convs kept float (module names relative "
                   "to the encoder, e.g. model.0,model.1.block.3; a prefix such as model.1 takes a whole block)")
    t.add_argument("--init-run", default=None, help="start from this run's last.ckpt (weights and scales) instead "
                   "of the calibrated float model")
    t.add_argument("--smooth-alpha", type=float, default=None, help="SmoothQuant-b input transform of every int8 "
                   "conv (per-channel shift to the range's midpoint, divisor r^alpha / max|W|^(1-alpha); the engine's "
                   "act_shift / act_smooth), calibrated before fine-tuning; default none")
    t.add_argument("--smooth-no-shift", action="store_true", help="the transform without the shift")
    t.add_argument("--act-mode", type=act_mode_arg, default="static",
                   help="int8 conv activations: one learned u8 scale per tensor (static), each output step's "
                        "im2col row on its own range at run time (token; the engine's act_dynamic), or each input "
                        "step's groups of N channels (frameN, e.g. frame8; the engine's act_group)")
    t.add_argument("--float-frozen", action="store_true", help="the convs left float (--float-convs) keep the "
                   "float model's weights (only the int8 layers train)")
    t.add_argument("--lstm-frozen", action="store_true", help="keep the int8 LSTM as calibrated (not trained)")
    t.add_argument("--lstm-scales", choices=["per_matrix", "shared"], default="per_matrix",
                   help="int8 LSTM weight scales per row of each matrix (the engine's own kernels; default) or per "
                        "gate row shared by all matrices (oneDNN's RNN; runs made before 2026-12-07)")
    t.add_argument("--no-convs", action="store_true")
    t.add_argument("--no-lstm", action="store_true")
    t.add_argument("--warmup-steps", type=int, default=0, help="linear lr warm-up over this many steps")
    t.add_argument("--total-steps", type=int, default=3000, help="length of the lr schedule and the step limit")
    t.add_argument("--max-minutes", type=float, default=None)
    t.add_argument("--calib-batches", type=int, default=8)
    t.add_argument("--act-init", choices=["minmax", "mse"], default="mse",
                   help="initial activation ranges: min-max, or the MSE-optimal shrink of it (default)")
    t.add_argument("--gain-db", type=float, nargs=2, default=[-6.0, 6.0],
                   help="random gain of each crop (the clips keep their recorded levels otherwise)")
    t.add_argument("--peak-db", type=float, nargs=2, default=None,
                   help="normalise each clip's peak to a random level first (train.py's data.peak_db); default off, "
                        "so that the levels, and the activation ranges they need, are those of real input")
    t.add_argument("--seed", type=int, default=24)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--eval-every", type=int, default=100)
    t.add_argument("--checkpoint-minutes", type=float, default=5.0)
    t.add_argument("--restart", action="store_true")
    t.add_argument("--allow-config-change", action="store_true")
    x = sub.add_parser("export", help="write the fine-tuned int8 encoder into a version-2 .wtk")
    x.add_argument("--run", required=True)
    x.add_argument("--base", required=True, help=".wtk whose other tensors are kept (float model, or its "
                   "`wavtok quantize` w8a8-lstm output for an int8 decoder)")
    x.add_argument("-o", "--out", required=True)
    return ap, t


def main():
    ap, t = build_parser()
    a = ap.parse_args()
    if a.cmd == "train" and a.recipe:
        apply_recipe(t, a.recipe)
        a = ap.parse_args()
    if a.cmd == "train":
        train(a)
    else:
        model, st = load_run(a.run)
        n = export_wtk(model, a.base, a.out)
        print(f"{a.out}: step {st['step']}, {n['int8_convs']} int8 convs, {n['int8_lstms']} int8 LSTMs")


if __name__ == "__main__":
    main()
