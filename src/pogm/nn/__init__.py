"""Networks only."""

from pogm.nn.mlp import MLP, GaussianHead, MultiInputMLP

__all__ = ["MLP", "MultiInputMLP", "GaussianHead"]
