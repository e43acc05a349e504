"""Quantized .wtk files (format version 2, io/model_file.h) in PyTorch: a decoder that emulates the engine's
int8/W4 layers exactly (docs/PTQ.md "What runs in int8", models/quantized.h).

    from wtk_io import WtkFile                    # the file's reader and writer (versions 1 and 2)
    from wtk_quant import quantized_decoder
    f = WtkFile.read("model-w4.wtk")              # header, config text, every tensor's raw entry
    student = quantized_decoder(float_ref, f)     # wavtok_ref.WavTokenizer whose decoder runs the int8 layers

Emulation of an int8 Conv1d/Linear NAME (what nn/layers.cc computes): u = (x - act_shift) * inv with
inv = 1 / (act_smooth * act_scale) in float32 (1 / act_scale without a divisor), codes q = rint(clamp(u, -z, 255 - z))
(half to even), y = out_scale * (q @ codes^T) + b' with out_scale = act_scale * weight_scale[o] and the stored s8
weight codes; convolutions quantize their zero-padded input (the engine pads before it quantizes). Gradients pass
the rounding straight through (inside the clamp range), so adapters can be fitted through the quantized decoder.
Packed low-bit weights (feature bit 2, io/model_file.h; recipes configs/quant/w4-*.yaml) are unpacked to their s8
codes c = m_g * q (wtk_io.unpack_lowbit, the engine's arithmetic): a W4A8 layer is then exactly the int8 layer above
on those codes, as in the engine (nn/layers.cc runs it on the s8 kernels). A low-bit weight-only layer (no
act_quant) runs in float on codes * weight_scale, as the engine's reader hands it out.
Low-rank adapters NAME.lora_a [r, Cin] / NAME.lora_b [Cout, r] (feature bit 4) add (x A^T) B^T to a Linear's
output before its activation, as the engine does; on the convolutions the engine adapts (backbone.embed and the
pos_net ResnetBlock convs, ADAPTED_CONV) NAME.lora_a [r, Cin, K] / NAME.lora_b [Cout, r] add B (A * x), A * x the
convolution of the layer's zero-padded float input with A (the layer's dilation), as Conv1d::set_lowrank does.
"""
import copy
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavtok_ref.vocos import CausalConv1d  # noqa: E402
from wtk_io import (DT_F32, DT_PACKED, DT_S8, FEATURE_INT8_ATTENTION, FEATURE_SOFTMAX,  # noqa: E402
                    WtkError)  # (reader/writer: wtk_io)


# The convolutions the engine runs as Conv1d with adapters (models/model.cc); pos_net.2's q/k/v/proj_out are 1x1
# convs here but Linear layers in the engine, and take no adapters.
ADAPTED_CONV = re.compile(r"^backbone\.(embed|pos_net\.\d+\.conv[12])$")


def _round_ste(u):
    return u + (torch.round(u) - u).detach()  # torch.round: half to even, like rint


class QuantLayer(nn.Module):
    """The engine's int8 Conv1d (channels-first here) or Linear, plus an optional low-rank adapter (Linear); or a
    low-bit weight-only layer (packed weight, no act_quant): float input, float weight codes * weight_scale."""

    def __init__(self, f, name, module):
        super().__init__()
        self.name = name
        self.is_linear = isinstance(module, nn.Linear)
        self.causal = isinstance(module, CausalConv1d)
        if not self.is_linear:
            if module.groups != 1 or module.stride[0] != 1:
                raise WtkError(f"{f.path}: {name}: only stride-1, groups-1 convs are emulated")
            self.pad = (module.kernel_size[0] - 1, 0) if self.causal else (module.padding[0], module.padding[0])
            self.dilation = module.dilation[0]
        self.weight_only = name + ".act_quant" not in f.entries
        if self.weight_only and not f.is_packed(name + ".weight"):
            raise WtkError(f"{f.path}: {name} has neither act_quant nor a packed low-bit weight")
        aq = np.array([1.0, 0.0], np.float32) if self.weight_only else f.array(name + ".act_quant")
        self.act_scale, self.act_zero = float(aq[0]), float(aq[1])
        sa = torch.tensor(aq[0], dtype=torch.float32)
        cin = module.in_channels if not self.is_linear else module.in_features
        shift = f.array(name + ".act_shift") if name + ".act_shift" in f.entries else np.zeros(cin, np.float32)
        if name + ".act_smooth" in f.entries:
            inv = 1.0 / (torch.from_numpy(f.array(name + ".act_smooth")) * sa)  # float32 as nn/layers.cc
        else:
            inv = (1.0 / sa).expand(cin).clone()
        self.register_buffer("shift", torch.from_numpy(shift))
        self.register_buffer("inv", inv.float())
        # s8 codes, or a packed low-bit weight's m_g * q unpacked as the engine's reader does (io/model_file.cc:
        # it hands out codes * weight_scale, from which the int8 layer takes back exactly these codes)
        self.register_buffer("codes", torch.from_numpy(f.codes(name + ".weight").astype(np.float32)))
        self.packed = f.is_packed(name + ".weight")
        if self.packed:  # average code bits over the weights (each group's width times its columns)
            bits, _, group = f.lowbit_groups(name + ".weight")
            cols = self.codes[0].numel()
            widths = np.minimum(group, cols - np.arange(bits.shape[1]) * group)
            self.avg_bits = float((bits * widths[None, :]).sum() / (bits.shape[0] * cols))
        ws = torch.from_numpy(f.array(name + ".weight_scale"))
        self.register_buffer("out_scale", (sa * ws).float())
        self.register_buffer("bias", torch.from_numpy(f.array(name + ".bias")))
        if self.weight_only:  # the float weight the engine's reader hands out: float32(code) * scale[o]
            self.register_buffer("weight", torch.from_numpy(f.array(name + ".weight")))
        self.lora_a = self.lora_b = None

    def takes_adapter(self):
        """Whether the engine runs an adapter on this layer: every Linear, and the ADAPTED_CONV convolutions."""
        return self.is_linear or ADAPTED_CONV.match(self.name) is not None

    def set_adapter(self, a, b):
        a = torch.as_tensor(a, dtype=torch.float32)
        b = torch.as_tensor(b, dtype=torch.float32)
        cout, cin = self.codes.shape[:2]
        want = (cin,) if self.is_linear else (cin, self.codes.shape[2])
        if (a.dim() != 1 + len(want) or tuple(a.shape[1:]) != want or b.dim() != 2 or b.shape[0] != cout
                or b.shape[1] != a.shape[0] or not 1 <= a.shape[0] <= 64):
            raise WtkError(f"{self.name}: adapter shapes {tuple(a.shape)} / {tuple(b.shape)} do not fit "
                           f"[r, {', '.join(map(str, want))}] / [{cout}, r] with r in 1..64")
        self.lora_a = nn.Parameter(a.clone())
        self.lora_b = nn.Parameter(b.clone())

    def adapter_term(self, xp):
        """B (A * xp) of a conv's padded input (B, Cin, T + pad) -> (B, Cout, T)."""
        return F.conv1d(F.conv1d(xp, self.lora_a, dilation=self.dilation), self.lora_b[:, :, None])

    def weight_bits(self):
        """Code bits: the average group width of a packed low-bit weight, else the narrowest width holding every
        s8 code."""
        if self.packed:
            return self.avg_bits
        m = float(self.codes.abs().max())
        return next(b for b in range(2, 9) if m <= 2 ** (b - 1) - 1)

    def quant_input(self, x, ch_dim):
        shape = [1] * x.dim()
        shape[ch_dim] = -1
        u = (x - self.shift.view(shape)) * self.inv.view(shape)
        u = torch.clamp(u, -self.act_zero, 255.0 - self.act_zero)
        return _round_ste(u)  # q - z, an integer in [-z, 255 - z]

    def forward(self, x):
        if self.is_linear:  # (B, T, C)
            if self.weight_only:
                y = F.linear(x, self.weight, self.bias)
            else:
                y = F.linear(self.quant_input(x, -1), self.codes) * self.out_scale + self.bias
            if self.lora_a is not None:
                y = y + F.linear(F.linear(x, self.lora_a), self.lora_b)
            return y
        xp = F.pad(x, self.pad)  # zeros, quantized like the engine's padded rows
        if self.weight_only:
            y = F.conv1d(xp, self.weight, self.bias, dilation=self.dilation)
        else:
            y = F.conv1d(self.quant_input(xp, 1), self.codes, dilation=self.dilation)
            y = y * self.out_scale[None, :, None] + self.bias[None, :, None]
        if self.lora_a is not None:
            y = y + self.adapter_term(xp)
        return y


DECODER_PREFIXES = ("backbone.", "head.")


class QuantDecoder(nn.Module):
    """A copy of a reference model's decoder (backbone + head, same tensor names)."""

    def __init__(self, float_model):
        super().__init__()
        self.backbone = copy.deepcopy(float_model.backbone)
        self.head = copy.deepcopy(float_model.head)

    def decode(self, features, bandwidth_id=0):
        """features (B, D, F) -> audio (B, F * hop)."""
        return self.head(self.backbone(features, bandwidth_id=torch.tensor([int(bandwidth_id)])))


def quantized_decoder(float_model, f):
    """A QuantDecoder of the float reference that runs f's int8 layers and adapters. Tensors of
    f that the float model has (the decoder's float layers, pwconv2 with gamma folded) replace the float ones;
    a ConvNeXt gamma the quantizer folded away becomes 1."""
    if f.features & FEATURE_SOFTMAX:
        raise WtkError(f"{f.path}: post-softmax quantization is not emulated here; use a recipe without 'softmax:'")
    if f.features & FEATURE_INT8_ATTENTION:
        raise WtkError(f"{f.path}: int8 attention is not emulated here; use a recipe without 'attention: int8'")
    m = QuantDecoder(float_model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    sd = m.state_dict()
    new = {}
    for name in f.entries:  # float tensors, and the codes * weight_scale of low-bit weight-only layers (no act_quant)
        if name.startswith(DECODER_PREFIXES) and name in sd and f.entries[name][0] in (DT_F32, DT_S8, DT_PACKED):
            new[name] = torch.from_numpy(f.array(name)).reshape(sd[name].shape)
    for k in sd:
        if k.startswith("backbone.convnext.") and k.endswith(".gamma") and k not in f.entries:
            new[k] = torch.ones_like(sd[k])
    m.load_state_dict(new, strict=False)
    layers = {}
    for name, mod in list(m.named_modules()):
        if not name.startswith(DECODER_PREFIXES) or (name + ".act_quant" not in f.entries and
                                                     not f.is_packed(name + ".weight")):
            continue
        if not isinstance(mod, (nn.Linear, nn.Conv1d)):
            raise WtkError(f"{f.path}: {name} is quantized but is not a Linear/Conv1d")
        q = QuantLayer(f, name, mod)
        parent, leaf = name.rsplit(".", 1)
        setattr(m.get_submodule(parent), leaf, q)
        layers[name] = q
    for name in f.entries:
        if name.endswith(".lora_a"):
            base = name[:-7]
            if base not in layers or not layers[base].takes_adapter():
                raise WtkError(f"{f.path}: adapter {name} is not on a quantized Linear, backbone.embed or pos_net "
                               "conv of the decoder")
            if base + ".lora_b" not in f.entries:
                raise WtkError(f"{f.path}: {base} has .lora_a without .lora_b")
            try:
                layers[base].set_adapter(f.array(name), f.array(base + ".lora_b"))
            except WtkError as e:
                raise WtkError(f"{f.path}: {e}") from None
        elif name.endswith(".lora_b") and name[:-7] + ".lora_a" not in f.entries:
            raise WtkError(f"{f.path}: {name[:-7]} has .lora_b without .lora_a")
    m.quant_layers = layers
    return m


def float_linear_weight(float_model, name):
    """(W, b) of the float model's Linear or Conv1d `name` as the function it computes (ConvNeXt gamma folded into
    pwconv2)."""
    mod = float_model.get_submodule(name)
    w, b = mod.weight.detach().clone(), mod.bias.detach().clone()
    m = re.match(r"^(backbone\.convnext\.\d+)\.pwconv2$", name)
    if m is not None:
        g = float_model.get_submodule(m.group(1)).gamma
        if g is not None:
            w, b = w * g.detach()[:, None], b * g.detach()
    return w, b
