"""SEANet encoder / decoder (the convolutional front end of EnCodec and WavTokenizer).

Module attribute names follow the released checkpoints, so that a state_dict saved
from these modules has keys like ``model.0.conv.conv.weight_g``.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F


def _weight_norm(module: nn.Module, norm: str) -> nn.Module:
    if norm == "weight_norm":
        # The classic hook keeps the parameters as weight_g / weight_v, which is
        # the naming used in released checkpoints.
        return nn.utils.weight_norm(module)
    if norm == "none":
        return module
    raise ValueError(f"unsupported norm {norm!r} (only 'weight_norm' and 'none')")


def extra_padding_for_stride(length: int, kernel: int, stride: int, pad_total: int) -> int:
    """Right padding needed so that the last conv window is complete.

    With `pad_total` padding already planned, the conv produces
    ceil((length + pad_total - kernel) / stride) + 1 frames once the input is
    extended to the length those frames cover.
    """
    frames = (length + pad_total - kernel) / stride + 1
    needed = (math.ceil(frames) - 1) * stride + kernel - pad_total
    return needed - length


def pad_1d(x: torch.Tensor, left: int, right: int, mode: str = "constant") -> torch.Tensor:
    """F.pad on the last axis; reflect mode also works when the input is shorter than the pad."""
    if mode == "zero":
        mode = "constant"
    if mode != "reflect":
        return F.pad(x, (left, right), mode=mode, value=0.0)
    n = x.shape[-1]
    biggest = max(left, right)
    fill = 0
    if n <= biggest:
        # reflect needs pad < length: grow the input with zeros on the right first,
        # then drop those zeros again after padding.
        fill = biggest - n + 1
        x = F.pad(x, (0, fill))
    y = F.pad(x, (left, right), mode="reflect")
    return y[..., : y.shape[-1] - fill]


class NormConv1d(nn.Module):
    def __init__(self, *args, norm: str = "weight_norm", **kwargs):
        super().__init__()
        self.conv = _weight_norm(nn.Conv1d(*args, **kwargs), norm)

    def forward(self, x):
        return self.conv(x)


class NormConvTranspose1d(nn.Module):
    def __init__(self, *args, norm: str = "weight_norm", **kwargs):
        super().__init__()
        self.convtr = _weight_norm(nn.ConvTranspose1d(*args, **kwargs), norm)

    def forward(self, x):
        return self.convtr(x)


class SConv1d(nn.Module):
    """Conv1d that pads its input itself.

    Padding total = effective kernel - stride. Non-causal: split with the odd sample on
    the left; causal: all on the left. Extra right padding (zeros or reflect, per
    pad_mode) makes the strided windows cover the whole input.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True, causal: bool = False,
                 norm: str = "weight_norm", pad_mode: str = "reflect"):
        super().__init__()
        self.conv = NormConv1d(in_ch, out_ch, kernel_size, stride, dilation=dilation,
                               groups=groups, bias=bias, norm=norm)
        self.causal = causal
        self.pad_mode = pad_mode

    def padding_for(self, length: int) -> Tuple[int, int]:
        c = self.conv.conv
        k_eff = (c.kernel_size[0] - 1) * c.dilation[0] + 1
        stride = c.stride[0]
        total = k_eff - stride
        extra = extra_padding_for_stride(length, k_eff, stride, total)
        if self.causal:
            return total, extra
        right = total // 2
        return total - right, right + extra

    def forward(self, x):
        left, right = self.padding_for(x.shape[-1])
        return self.conv(pad_1d(x, left, right, self.pad_mode))


class SConvTranspose1d(nn.Module):
    """ConvTranspose1d that trims (kernel - stride) output samples.

    Non-causal: floor(total / 2) trimmed on the right, the rest on the left;
    causal: ceil(total * trim_right_ratio) trimmed on the right, the rest on the left.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
                 causal: bool = False, norm: str = "weight_norm", trim_right_ratio: float = 1.0):
        super().__init__()
        self.convtr = NormConvTranspose1d(in_ch, out_ch, kernel_size, stride, norm=norm)
        self.causal = causal
        self.trim_right_ratio = trim_right_ratio

    def forward(self, x):
        c = self.convtr.convtr
        total = c.kernel_size[0] - c.stride[0]
        y = self.convtr(x)
        if self.causal:
            right = math.ceil(total * self.trim_right_ratio)
        else:
            right = total // 2
        left = total - right
        return y[..., left: y.shape[-1] - right]


class SLSTM(nn.Module):
    """Multi-layer LSTM over time on a (B, C, T) tensor, with an identity skip."""

    def __init__(self, dim: int, num_layers: int = 2, skip: bool = True):
        super().__init__()
        self.skip = skip
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x):
        seq = x.permute(2, 0, 1)  # (T, B, C)
        out, _ = self.lstm(seq)
        out = out.permute(1, 2, 0)
        return out + x if self.skip else out


class SEANetResnetBlock(nn.Module):
    """ELU -> conv(k, dim->dim/compress) -> ELU -> conv(1, ->dim), plus a 1x1 conv (or identity) shortcut."""

    def __init__(self, dim: int, kernel_sizes: Sequence[int] = (3, 1), dilations: Sequence[int] = (1, 1),
                 norm: str = "weight_norm", causal: bool = False, pad_mode: str = "reflect",
                 compress: int = 2, true_skip: bool = False, alpha: float = 1.0):
        super().__init__()
        hidden = dim // compress
        layers: List[nn.Module] = []
        n = len(kernel_sizes)
        for i, (k, d) in enumerate(zip(kernel_sizes, dilations)):
            cin = dim if i == 0 else hidden
            cout = dim if i == n - 1 else hidden
            layers.append(nn.ELU(alpha))
            layers.append(SConv1d(cin, cout, k, dilation=d, norm=norm, causal=causal, pad_mode=pad_mode))
        self.block = nn.Sequential(*layers)
        if true_skip:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = SConv1d(dim, dim, 1, norm=norm, causal=causal, pad_mode=pad_mode)

    def forward(self, x):
        return self.shortcut(x) + self.block(x)


class SEANetEncoder(nn.Module):
    """Audio (B, channels, T) -> latents (B, dimension, T / prod(ratios)).

    `ratios` are given in decoder order (as upstream configs do); the encoder downsamples
    with them reversed.
    """

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32,
                 n_residual_layers: int = 1, ratios: Sequence[int] = (8, 5, 4, 2),
                 norm: str = "weight_norm", kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, causal: bool = False,
                 pad_mode: str = "reflect", true_skip: bool = False, compress: int = 2, lstm: int = 2):
        super().__init__()
        self.channels = channels
        self.dimension = dimension
        self.n_filters = n_filters
        self.ratios = list(reversed(list(ratios)))
        self.hop_length = int(math.prod(self.ratios))
        common = dict(norm=norm, causal=causal, pad_mode=pad_mode)
        mult = 1
        layers: List[nn.Module] = [SConv1d(channels, n_filters, kernel_size, **common)]
        for stride in self.ratios:
            ch = mult * n_filters
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(ch, kernel_sizes=(residual_kernel_size, 1),
                                                dilations=(dilation_base ** j, 1), compress=compress,
                                                true_skip=true_skip, **common))
            layers.append(nn.ELU(1.0))
            layers.append(SConv1d(ch, ch * 2, kernel_size=2 * stride, stride=stride, **common))
            mult *= 2
        if lstm:
            layers.append(SLSTM(mult * n_filters, num_layers=lstm))
        layers.append(nn.ELU(1.0))
        layers.append(SConv1d(mult * n_filters, dimension, last_kernel_size, **common))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latents (B, dimension, F) -> audio (B, channels, F * prod(ratios)), transposed convs."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32,
                 n_residual_layers: int = 1, ratios: Sequence[int] = (8, 5, 4, 2),
                 norm: str = "weight_norm", kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, causal: bool = False,
                 pad_mode: str = "reflect", true_skip: bool = False, compress: int = 2, lstm: int = 2,
                 trim_right_ratio: float = 1.0, final_activation: str | None = None):
        super().__init__()
        self.channels = channels
        self.dimension = dimension
        self.n_filters = n_filters
        self.ratios = list(ratios)
        self.hop_length = int(math.prod(self.ratios))
        common = dict(norm=norm, causal=causal, pad_mode=pad_mode)
        mult = 2 ** len(self.ratios)
        layers: List[nn.Module] = [SConv1d(dimension, mult * n_filters, kernel_size, **common)]
        if lstm:
            layers.append(SLSTM(mult * n_filters, num_layers=lstm))
        for stride in self.ratios:
            ch = mult * n_filters
            layers.append(nn.ELU(1.0))
            layers.append(SConvTranspose1d(ch, ch // 2, kernel_size=2 * stride, stride=stride, norm=norm,
                                           causal=causal, trim_right_ratio=trim_right_ratio))
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(ch // 2, kernel_sizes=(residual_kernel_size, 1),
                                                dilations=(dilation_base ** j, 1), compress=compress,
                                                true_skip=true_skip, **common))
            mult //= 2
        layers.append(nn.ELU(1.0))
        layers.append(SConv1d(n_filters, channels, last_kernel_size, **common))
        if final_activation is not None:
            layers.append(getattr(nn, final_activation)())
        self.model = nn.Sequential(*layers)

    def forward(self, z):
        return self.model(z)
