"""WavTokenizer: SEANet encoder -> VQ -> Vocos backbone -> iSTFT head.

State-dict keys match the released Lightning checkpoints:
feature_extractor.encodec.{encoder,quantizer,decoder}.*, backbone.*, head.*.
"""
from __future__ import annotations

import math
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .config import WavTokenizerConfig
from .seanet import SEANetEncoder, SEANetDecoder
from .vq import ResidualVectorQuantizer
from .vocos import VocosBackbone, ISTFTHead

INFERENCE_PREFIXES = ("feature_extractor.", "backbone.", "head.")


class EncodecCore(nn.Module):
    """Container named like upstream's EncodecModel (encoder, quantizer, decoder)."""

    def __init__(self, encoder: SEANetEncoder, decoder: SEANetDecoder, quantizer: ResidualVectorQuantizer):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.quantizer = quantizer


class EncodecFeatures(nn.Module):
    """Audio -> (quantized features, codes, commitment loss)."""

    def __init__(self, cfg: WavTokenizerConfig):
        super().__init__()
        common = dict(channels=1, n_residual_layers=cfg.n_residual_layers, norm="weight_norm",
                      kernel_size=cfg.kernel_size, last_kernel_size=cfg.last_kernel_size,
                      residual_kernel_size=cfg.residual_kernel_size, dilation_base=2,
                      causal=cfg.causal, pad_mode=cfg.pad_mode, true_skip=False,
                      compress=cfg.compress, lstm=cfg.lstm_layers)
        encoder = SEANetEncoder(dimension=cfg.dimension, n_filters=cfg.n_filters, ratios=cfg.ratios, **common)
        decoder = SEANetDecoder(dimension=cfg.dimension, n_filters=cfg.n_filters, ratios=cfg.decoder_ratios,
                                **common)
        quantizer = ResidualVectorQuantizer(dimension=cfg.dimension, n_q=cfg.n_q, bins=cfg.codebook_size,
                                            decay=cfg.decay, kmeans_init=True, kmeans_iters=cfg.kmeans_iters,
                                            threshold_ema_dead_code=cfg.threshold_ema_dead_code)
        self.encodec = EncodecCore(encoder, decoder, quantizer)
        self.frame_rate = cfg.frame_rate
        self.bandwidths = list(cfg.bandwidths)

    @property
    def encoder(self) -> SEANetEncoder:
        return self.encodec.encoder

    @property
    def quantizer(self) -> ResidualVectorQuantizer:
        return self.encodec.quantizer

    def forward(self, audio: torch.Tensor, n_q: Optional[int] = None):
        """audio (B, T) -> (quantized (B, D, F), codes (n_q, B, F), commit loss, latents (B, D, F))."""
        latents = self.encodec.encoder(audio.unsqueeze(1))
        res = self.encodec.quantizer(latents, n_q=n_q, frame_rate=self.frame_rate)
        return res.quantized, res.codes, res.penalty, latents


class WavTokenizer(nn.Module):
    def __init__(self, cfg: Optional[WavTokenizerConfig] = None, **kwargs):
        """Build from a config, or from explicit dims passed as keyword arguments
        (any WavTokenizerConfig field: n_filters, dimension, ratios, codebook_size, n_q,
        backbone_dim, intermediate_dim, num_layers, adanorm_num_embeddings, n_fft, hop_length, ...).
        hop_length defaults to prod(ratios) and n_fft to 4 * hop when only ratios are given."""
        super().__init__()
        if cfg is None:
            cfg = WavTokenizerConfig()
            if "ratios" in kwargs:
                hop = int(math.prod(kwargs["ratios"]))
                kwargs.setdefault("hop_length", hop)
                kwargs.setdefault("n_fft", 4 * hop)
        else:
            cfg = cfg.copy()
        for k, v in kwargs.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown WavTokenizer option {k!r}")
            setattr(cfg, k, v)
        cfg.validate()
        self.cfg = cfg
        self.feature_extractor = EncodecFeatures(cfg)
        self.backbone = VocosBackbone(cfg.dimension, cfg.backbone_dim, cfg.intermediate_dim, cfg.num_layers,
                                      layer_scale_init_value=cfg.layer_scale_init_value,
                                      adanorm_num_embeddings=cfg.adanorm_num_embeddings,
                                      pos_net_norm=cfg.pos_net_norm, attention_window=cfg.attention_window,
                                      causal=cfg.causal)
        self.head = ISTFTHead(cfg.backbone_dim, cfg.n_fft, cfg.hop_length, cfg.padding)

    # ------------------------------------------------------------ properties
    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def codebooks(self) -> torch.Tensor:
        """All codebooks stacked: (n_q * codebook_size, D)."""
        return torch.cat([l.codebook for l in self.feature_extractor.quantizer.vq.layers], dim=0)

    def _bandwidth_tensor(self, bandwidth_id: Union[int, torch.Tensor], device) -> torch.Tensor:
        if isinstance(bandwidth_id, torch.Tensor):
            return bandwidth_id.to(device=device, dtype=torch.long).reshape(-1)
        return torch.tensor([int(bandwidth_id)], device=device)

    # ------------------------------------------------------------ inference API
    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_q: Optional[int] = None
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """audio (B, T) or (T,) -> (features (B, D, F), codes (n_q, B, F) int64, latents (B, D, F))."""
        if audio.dim() == 1:
            audio = audio[None]
        fe = self.feature_extractor
        latents = fe.encoder(audio.unsqueeze(1))
        codes = fe.quantizer.encode(latents, n_q=n_q)
        features = fe.quantizer.decode(codes)
        return features, codes, latents

    @torch.no_grad()
    def codes_to_features(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_q, B, F) or (n_q, F) -> features (B, D, F): sum of the codewords."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(1)
        return self.feature_extractor.quantizer.decode(codes.long())

    def decode_with_grad(self, features: torch.Tensor, bandwidth_id: Union[int, torch.Tensor] = 0) -> torch.Tensor:
        bw = self._bandwidth_tensor(bandwidth_id, features.device)
        return self.head(self.backbone(features, bandwidth_id=bw))

    @torch.no_grad()
    def decode(self, features: torch.Tensor, bandwidth_id: Union[int, torch.Tensor] = 0) -> torch.Tensor:
        """features (B, D, F) -> audio (B, F * hop)."""
        return self.decode_with_grad(features, bandwidth_id)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor, bandwidth_id: Union[int, torch.Tensor] = 0) -> torch.Tensor:
        return self.decode(self.codes_to_features(codes), bandwidth_id)

    # ------------------------------------------------------------ training API
    def forward(self, audio: torch.Tensor, bandwidth_id: Union[int, torch.Tensor] = 0,
                n_q: Optional[int] = None):
        """Differentiable copy-synthesis (training): audio (B, T) ->
        (audio_hat (B, T'), codes (n_q, B, F), commit_loss). In train mode the quantizer
        k-means-initialises on the first batch and updates its codebook by EMA."""
        features, codes, commit_loss, _ = self.feature_extractor(audio, n_q=n_q)
        return self.decode_with_grad(features, bandwidth_id), codes, commit_loss

    # ------------------------------------------------------------ persistence
    def inference_state_dict(self) -> Dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith(INFERENCE_PREFIXES)}

    def save_checkpoint(self, path: str, config_path: Optional[str] = None, extra_state: Optional[Dict] = None,
                        epoch: int = 0, global_step: int = 0, **extra):
        """Write a Lightning-style .ckpt (dict with state_dict) and, if config_path is given,
        a release-layout config.yaml. extra_state: more state_dict entries to include
        (e.g. discriminators), they are ignored by the loader like in releases."""
        sd = self.inference_state_dict()
        sd = {k: v.detach().cpu().clone().contiguous() for k, v in sd.items()}
        if extra_state:
            for k, v in extra_state.items():
                sd[k] = v.detach().cpu().clone().contiguous()
        from collections import OrderedDict
        ckpt = {
            "epoch": int(epoch),
            "global_step": int(global_step),
            "pytorch-lightning_version": "1.8.6",
            "state_dict": OrderedDict(sd),
            "loops": {},
            "callbacks": {},
            "optimizer_states": [],
            "lr_schedulers": [],
            "hparams_name": "kwargs",
            "hyper_parameters": {"sample_rate": self.cfg.sample_rate, "feature_extractor": "Features"},
        }
        ckpt.update(extra)
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        torch.save(ckpt, path)
        if config_path is not None:
            self.cfg.write_yaml(config_path)

    def load_inference_state(self, state_dict: Dict[str, torch.Tensor], strict: bool = True):
        sd = {k: v for k, v in state_dict.items() if k.startswith(INFERENCE_PREFIXES)}
        return self.load_state_dict(sd, strict=strict)


def read_checkpoint_state(ckpt_path: str) -> Dict[str, torch.Tensor]:
    """state_dict of a Lightning .ckpt (dict with 'state_dict') or of a plain state_dict file."""
    try:
        obj = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    except TypeError:  # torch without the weights_only argument
        obj = torch.load(ckpt_path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        return obj["state_dict"]
    return obj


def load_wavtokenizer(ckpt_path: str, config_path: str, strict: bool = True) -> WavTokenizer:
    """Build from a release config.yaml + checkpoint (.ckpt or plain state_dict), eval mode."""
    sd = read_checkpoint_state(ckpt_path)
    cfg = WavTokenizerConfig.from_release_yaml(config_path, sd)
    # upstream's decoder inside the feature extractor has hard-coded ratios; keep whatever is stored
    _check_encoder_strides(cfg, sd)
    model = WavTokenizer(cfg)
    model.load_inference_state(sd, strict=strict)
    model.eval()
    return model


def _check_encoder_strides(cfg: WavTokenizerConfig, sd: Dict[str, torch.Tensor]):
    from .config import ENC_PREFIX
    idx = 1
    for stride in reversed(cfg.ratios):
        idx += cfg.n_residual_layers + 1  # residual blocks, ELU
        key = ENC_PREFIX + f"model.{idx}.conv.conv.weight_v"
        if key in sd and int(sd[key].shape[-1]) != 2 * stride:
            raise ValueError(f"config ratios {cfg.ratios} disagree with {key} kernel {tuple(sd[key].shape)}")
        idx += 1
