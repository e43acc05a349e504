"""Model hyper-parameters and the release config.yaml layout."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, asdict
from typing import Dict, List, Optional

import yaml

ENC_PREFIX = "feature_extractor.encodec.encoder."
DEC_PREFIX = "feature_extractor.encodec.decoder."
VQ_PREFIX = "feature_extractor.encodec.quantizer.vq.layers."


@dataclass
class WavTokenizerConfig:
    sample_rate: int = 24000
    # SEANet encoder (ratios in upstream/decoder order; the encoder applies them reversed)
    n_filters: int = 32
    dimension: int = 512
    ratios: List[int] = field(default_factory=lambda: [8, 5, 4, 2])
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    n_residual_layers: int = 1
    lstm_layers: int = 2
    compress: int = 2
    # causal: the whole model looks at no future frame beyond the iSTFT's one hop (wavtok extension,
    # docs/STREAMING.md "Causal models"): SEANet encoder convs padded on the left only (the LSTM stays), backbone
    # convs padded on the left only, attention_window [left, 0], per-channel affines instead of GroupNorm
    # (pos_net_norm "affine"), and an iSTFT head with n_fft <= 3 * hop_length.
    causal: bool = False
    pad_mode: str = "reflect"
    # the unused SEANet decoder kept in release checkpoints (upstream hard-codes its ratios)
    decoder_ratios: List[int] = field(default_factory=lambda: [8, 5, 4, 2])
    # quantizer
    codebook_size: int = 4096
    n_q: int = 1
    kmeans_iters: int = 200
    decay: float = 0.99
    threshold_ema_dead_code: int = 2
    bandwidths: List[float] = field(default_factory=lambda: [6.6, 6.6, 6.6, 6.6])
    # Vocos backbone
    backbone_dim: int = 768
    intermediate_dim: int = 2304
    num_layers: int = 12
    adanorm_num_embeddings: Optional[int] = 4
    layer_scale_init_value: Optional[float] = None
    # wavtok extensions (not in upstream configs): "affine" replaces pos_net's GroupNorms by per-channel affines
    # and attention_window [left, right] bounds the attention, so the backbone streams exactly
    pos_net_norm: str = "group"
    attention_window: Optional[List[int]] = None
    # iSTFT head
    n_fft: int = 1280
    hop_length: int = 320
    padding: str = "same"

    @property
    def encoder_hop(self) -> int:
        return int(math.prod(self.ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.encoder_hop

    def validate(self):
        if self.encoder_hop != self.hop_length:
            raise ValueError(f"encoder hop {self.encoder_hop} != head hop_length {self.hop_length}")
        if self.pos_net_norm not in ("group", "affine"):
            raise ValueError(f"pos_net_norm must be 'group' or 'affine', not {self.pos_net_norm!r}")
        if self.attention_window is not None and (len(self.attention_window) != 2 or min(self.attention_window) < 0):
            raise ValueError(f"attention_window must be [left, right] with both >= 0, not {self.attention_window}")
        if self.padding == "same" and (self.n_fft - self.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even for 'same' padding")
        if self.causal:
            if self.pos_net_norm != "affine":
                raise ValueError("a causal model needs pos_net_norm 'affine' (GroupNorm over time sees the future)")
            if self.attention_window is None or int(self.attention_window[1]) != 0:
                raise ValueError(f"a causal model needs attention_window [left, 0], not {self.attention_window}")
            if self.padding != "same" or self.n_fft > 3 * self.hop_length:
                raise ValueError(f"a causal model needs a 'same'-padded iSTFT with n_fft <= 3 * hop_length "
                                 f"(n_fft {self.n_fft}, hop {self.hop_length}): its audio then needs one frame ahead")

    @property
    def istft_pad(self) -> int:
        """Samples the 'same'-padded iSTFT trims at the start: output sample i is untrimmed position i + pad."""
        return (self.n_fft - self.hop_length) // 2

    @property
    def causal_latency_samples(self) -> int:
        """Causal models: the most input samples between a sample's arrival and its reconstruction (no compute).
        Sample i lies at iSTFT position i + pad; the frames overlapping it are t <= (i + pad) // hop, and the causal
        encoder finishes frame t when sample (t + 1) * hop - 1 arrived; the worst i (i + pad a multiple of hop)
        waits hop + pad samples."""
        return self.hop_length + self.istft_pad

    # ---------------------------------------------------------------- yaml
    def to_release_dict(self) -> Dict:
        """The release config.yaml layout (LightningCLI style)."""
        fe = {
            "class_path": "decoder.feature_extractors.EncodecFeatures",
            "init_args": {
                "encodec_model": "encodec_24khz",
                "bandwidths": list(self.bandwidths),
                "train_codebooks": True,
                "num_quantizers": self.n_q,
                "dowmsamples": list(self.ratios),
                "vq_bins": self.codebook_size,
                "vq_kmeans": self.kmeans_iters,
            },
        }
        if self.causal:
            fe["init_args"]["causal"] = True
        if self.pad_mode != "reflect":
            fe["init_args"]["pad_mode"] = self.pad_mode
        bb_args = {
            "input_channels": self.dimension,
            "dim": self.backbone_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_layers": self.num_layers,
            "adanorm_num_embeddings": self.adanorm_num_embeddings,
        }
        if self.layer_scale_init_value is not None:
            bb_args["layer_scale_init_value"] = self.layer_scale_init_value
        if self.pos_net_norm != "group":
            bb_args["pos_net_norm"] = self.pos_net_norm
        if self.attention_window is not None:
            bb_args["attention_window"] = [int(v) for v in self.attention_window]
        if self.causal:
            bb_args["causal"] = True
        bb = {"class_path": "decoder.models.VocosBackbone", "init_args": bb_args}
        head = {
            "class_path": "decoder.heads.ISTFTHead",
            "init_args": {"dim": self.backbone_dim, "n_fft": self.n_fft,
                          "hop_length": self.hop_length, "padding": self.padding},
        }
        n = self.sample_rate * 3
        return {
            "seed_everything": 3407,
            "data": {
                "class_path": "decoder.dataset.VocosDataModule",
                "init_args": {
                    "train_params": {"filelist_path": "./data/train/filelist", "sampling_rate": self.sample_rate,
                                     "num_samples": n, "batch_size": 40, "num_workers": 8},
                    "val_params": {"filelist_path": "./data/val/filelist", "sampling_rate": self.sample_rate,
                                   "num_samples": n, "batch_size": 5, "num_workers": 8},
                },
            },
            "model": {
                "class_path": "decoder.experiment.WavTokenizer",
                "init_args": {
                    "sample_rate": self.sample_rate,
                    "initial_learning_rate": 0.0002,
                    "mel_loss_coeff": 45,
                    "mrd_loss_coeff": 1.0,
                    "num_warmup_steps": 0,
                    "pretrain_mel_steps": 0,
                    "evaluate_utmos": True,
                    "evaluate_pesq": True,
                    "evaluate_periodicty": True,
                    "resume": False,
                    "feature_extractor": fe,
                    "backbone": bb,
                    "head": head,
                },
            },
            "trainer": {"max_steps": 2000000, "limit_val_batches": 100, "accelerator": "gpu",
                        "strategy": "ddp", "devices": [0], "log_every_n_steps": 1000},
        }

    def write_yaml(self, path: str):
        with open(path, "w") as f:
            yaml.safe_dump(self.to_release_dict(), f, sort_keys=False, default_flow_style=None, width=110)

    @classmethod
    def from_release_yaml(cls, path: str, state_dict: Optional[Dict] = None) -> "WavTokenizerConfig":
        """Read a release config.yaml; dims missing from it come from state_dict shapes."""
        with open(path) as f:
            raw = yaml.safe_load(f)
        return cls.from_release_dict(raw, state_dict)

    @classmethod
    def from_release_dict(cls, raw: Dict, state_dict: Optional[Dict] = None) -> "WavTokenizerConfig":
        m = raw.get("model", raw)
        m = m.get("init_args", m)
        fe = m["feature_extractor"].get("init_args", {})
        bb = m["backbone"].get("init_args", {})
        hd = m["head"].get("init_args", {})
        if fe.get("encodec_model", "encodec_24khz") != "encodec_24khz":
            raise ValueError(f"unsupported encodec_model {fe.get('encodec_model')}")
        c = cls()
        c.sample_rate = int(m.get("sample_rate", 24000))
        c.ratios = [int(r) for r in fe.get("dowmsamples", [6, 5, 5, 4])]
        c.codebook_size = int(fe.get("vq_bins", 16384))
        c.n_q = int(fe.get("num_quantizers", 1))
        c.kmeans_iters = int(fe.get("vq_kmeans", 800))
        c.bandwidths = [float(b) for b in fe.get("bandwidths", [1.5, 3.0, 6.0, 12.0])]
        c.dimension = int(bb["input_channels"])
        c.backbone_dim = int(bb["dim"])
        c.intermediate_dim = int(bb["intermediate_dim"])
        c.num_layers = int(bb["num_layers"])
        c.adanorm_num_embeddings = bb.get("adanorm_num_embeddings")
        c.layer_scale_init_value = bb.get("layer_scale_init_value")
        c.pos_net_norm = bb.get("pos_net_norm", "group")
        c.causal = bool(fe.get("causal", False)) or bool(bb.get("causal", False))
        c.pad_mode = fe.get("pad_mode", "reflect")
        w = bb.get("attention_window")
        c.attention_window = None if w is None else [int(v) for v in w]
        c.n_fft = int(hd["n_fft"])
        c.hop_length = int(hd["hop_length"])
        c.padding = hd.get("padding", "same")
        if state_dict is not None:
            c.update_from_state_dict(state_dict)
        return c

    def update_from_state_dict(self, sd: Dict):
        """Fill in the encoder sizes that release configs leave out, from tensor shapes."""
        first = sd.get(ENC_PREFIX + "model.0.conv.conv.weight_v")
        if first is None:
            return
        self.n_filters = int(first.shape[0])
        self.kernel_size = int(first.shape[-1])
        conv_keys = sorted({int(k[len(ENC_PREFIX + "model."):].split(".")[0])
                            for k in sd if k.startswith(ENC_PREFIX + "model.") and k.endswith("conv.conv.weight_v")})
        last = sd[ENC_PREFIX + f"model.{conv_keys[-1]}.conv.conv.weight_v"]
        self.dimension = int(last.shape[0])
        self.last_kernel_size = int(last.shape[-1])
        res = sd.get(ENC_PREFIX + "model.1.block.1.conv.conv.weight_v")
        if res is not None:
            self.residual_kernel_size = int(res.shape[-1])
            self.compress = max(1, self.n_filters // int(res.shape[0]))
        n_lstm = 0
        while any(k.startswith(ENC_PREFIX) and k.endswith(f"lstm.weight_ih_l{n_lstm}") for k in sd):
            n_lstm += 1
        self.lstm_layers = n_lstm
        n_q = 0
        while (VQ_PREFIX + f"{n_q}._codebook.embed") in sd:
            n_q += 1
        if n_q:
            self.n_q = n_q
            self.codebook_size = int(sd[VQ_PREFIX + "0._codebook.embed"].shape[0])

    def copy(self) -> "WavTokenizerConfig":
        return copy.deepcopy(self)

    def as_dict(self) -> Dict:
        return asdict(self)
