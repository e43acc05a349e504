"""wavtok_ref: a PyTorch reference implementation of WavTokenizer (and EnCodec's SEANet parts).

    import sys; sys.path.insert(0, "python")
    from wavtok_ref import WavTokenizer, load_wavtokenizer
"""
from .config import WavTokenizerConfig
from .seanet import SConv1d, SConvTranspose1d, SLSTM, SEANetEncoder, SEANetDecoder, SEANetResnetBlock
from .vq import EuclideanCodebook, VectorQuantization, ResidualVectorQuantization, ResidualVectorQuantizer, kmeans
from .vocos import VocosBackbone, ISTFTHead, ISTFT, AdaLayerNorm, ConvNeXtBlock, ResnetBlock, AttnBlock
from .model import WavTokenizer, EncodecFeatures, load_wavtokenizer, read_checkpoint_state
from .audio import read_wav, write_wav, resample
from .encodec import EncodecModel

__all__ = [
    "WavTokenizer", "WavTokenizerConfig", "load_wavtokenizer", "read_checkpoint_state", "EncodecFeatures",
    "SConv1d", "SConvTranspose1d", "SLSTM", "SEANetEncoder", "SEANetDecoder", "SEANetResnetBlock",
    "EuclideanCodebook", "VectorQuantization", "ResidualVectorQuantization", "ResidualVectorQuantizer", "kmeans",
    "VocosBackbone", "ISTFTHead", "ISTFT", "AdaLayerNorm", "ConvNeXtBlock", "ResnetBlock", "AttnBlock",
    "read_wav", "write_wav", "resample", "EncodecModel",
]
