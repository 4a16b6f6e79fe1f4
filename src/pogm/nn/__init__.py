"""Networks only."""

from pogm.nn.conv import ConvEncoder, DeconvDecoder
from pogm.nn.frozen import call_frozen
from pogm.nn.images import Discriminator, ImageDecoder, ImageEncoder
from pogm.nn.mlp import MLP, GaussianHead, LinearOutput, MultiInputMLP, full_precision
from pogm.nn.spatial import ResidualBlock, SpatialJointDiscriminator
from pogm.nn.x_networks import NETWORKS, x_decoder, x_encoder

__all__ = ["MLP", "MultiInputMLP", "GaussianHead", "LinearOutput", "full_precision", "ConvEncoder", "DeconvDecoder", "ImageEncoder", "ImageDecoder", "Discriminator", "ResidualBlock", "SpatialJointDiscriminator", "call_frozen", "NETWORKS", "x_encoder", "x_decoder"]
