"""Networks only."""

from pogm.nn.conv import ConvEncoder, DeconvDecoder
from pogm.nn.mlp import MLP, GaussianHead, MultiInputMLP

__all__ = ["MLP", "MultiInputMLP", "GaussianHead", "ConvEncoder", "DeconvDecoder"]
