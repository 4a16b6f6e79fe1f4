"""DRAW's selective attention (Gregor et al. 2015, section 3.2): a grid of N x N Gaussian filters
with a learned centre, stride, variance and intensity, and the read and write heads built on it.

The filterbank is a pure function of the five window parameters (`window_parameters`,
`filterbank`), so it is tested on its own; `read_window` and `write_window` apply it. Pixel
coordinates are 1-based, as in the paper: a window with centre g_x = (A + 1) / 2 sits in the middle
of an image A pixels wide.

    (g~_X, g~_Y, log sigma^2, log delta~, log gamma) = W(h^dec)                          (eq. 21)
    g_X = (A + 1)/2 (g~_X + 1),   g_Y = (B + 1)/2 (g~_Y + 1),
    delta = (max(A, B) - 1)/(N - 1) delta~                                       (eqs. 22-24)
    mu_X^i = g_X + (i - N/2 - 0.5) delta,   mu_Y^j = g_Y + (j - N/2 - 0.5) delta       (eqs. 19-20)
    F_X[i, a] = exp(-(a - mu_X^i)^2 / (2 sigma^2)) / Z_X   (each row sums to 1)       (eqs. 25-26)
    read:  gamma [F_Y x F_X^T, F_Y x^ F_X^T]                                           (eq. 27)
    write: (1 / gamma^) F^_Y^T w F^_X                                                  (eq. 29)

The normalisation Z_X is a softmax over pixels, computed in log space: a window far outside the
image still gives rows that sum to one, with no epsilon added to a denominator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pogm.nn.mlp import full_precision


@dataclass
class AttentionWindow:
    """A batch of N x N attention windows: the filterbanks and the intensity."""

    filter_x: Tensor  # [B, N, A]  (A = image width)
    filter_y: Tensor  # [B, N, H]  (H = image height)
    intensity: Tensor  # [B], gamma
    centre_x: Tensor  # [B], g_X (1-based pixels)
    centre_y: Tensor  # [B], g_Y
    stride: Tensor  # [B], delta


def filterbank(centre: Tensor, stride: Tensor, log_variance: Tensor, size: int, length: int) -> Tensor:
    """Gaussian filters ``[B, N, L]`` along one image axis (eqs. 19-20, 25-26).

    ``centre`` g, ``stride`` delta and ``log_variance`` log sigma^2 are ``[B]``; ``size`` is N,
    ``length`` the number of pixels L along the axis. Row i is a Gaussian over the 1-based pixel
    coordinates, centred at mu^i = g + (i - N/2 - 0.5) delta, normalised to sum to one.
    """
    i = torch.arange(1, size + 1, dtype=centre.dtype, device=centre.device)  # [N]
    a = torch.arange(1, length + 1, dtype=centre.dtype, device=centre.device)  # [L]
    mu = centre[:, None] + (i - size / 2 - 0.5) * stride[:, None]  # [B, N]
    log_kernel = -((a - mu[:, :, None]) ** 2) * torch.exp(-log_variance)[:, None, None] / 2  # [B, N, L]
    return torch.softmax(log_kernel, dim=-1)  # Z normalises over pixels (eq. 25)


def window_parameters(raw: Tensor, height: int, width: int, size: int) -> AttentionWindow:
    """The window given by the five unconstrained outputs ``raw`` ``[B, 5]`` of a linear layer of
    h^dec (eqs. 21-24): centre, stride, variance and intensity, then the two filterbanks."""
    if raw.shape[-1] != 5:
        raise ValueError(f"an attention window has 5 parameters (g_x, g_y, log sigma^2, log delta, log gamma); got {raw.shape[-1]}")
    g_x, g_y, log_variance, log_stride, log_intensity = raw.unbind(-1)  # each [B]
    centre_x = (width + 1) / 2 * (g_x + 1)  # eq. 22
    centre_y = (height + 1) / 2 * (g_y + 1)  # eq. 23
    stride = (max(height, width) - 1) / max(size - 1, 1) * torch.exp(log_stride)  # eq. 24
    return AttentionWindow(
        filter_x=filterbank(centre_x, stride, log_variance, size, width),
        filter_y=filterbank(centre_y, stride, log_variance, size, height),
        intensity=torch.exp(log_intensity),
        centre_x=centre_x,
        centre_y=centre_y,
        stride=stride,
    )


def read_window(image: Tensor, window: AttentionWindow) -> Tensor:
    """``gamma F_Y x F_X^T``: the N x N glimpse ``[B, C, N, N]`` of images ``[B, C, H, W]`` (eq. 27)."""
    glimpse = window.filter_y[:, None] @ image @ window.filter_x[:, None].transpose(-1, -2)  # [B, C, N, N]
    return window.intensity[:, None, None, None] * glimpse


def write_window(patch: Tensor, window: AttentionWindow) -> Tensor:
    """``(1 / gamma) F_Y^T w F_X``: an N x N patch ``[B, C, N, N]`` written into an image ``[B, C, H, W]`` (eq. 29)."""
    image = window.filter_y[:, None].transpose(-1, -2) @ patch @ window.filter_x[:, None]  # [B, C, H, W]
    return image / window.intensity[:, None, None, None]


class AttentionRead(nn.Module):
    """``read(x, x^, h^dec)`` with attention: two N x N glimpses (image and error image) flattened,
    ``[B, 2 C N N]`` (eq. 27)."""

    def __init__(self, hidden_dim: int, image_shape: Sequence[int], size: int) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.size = size
        self.window = nn.Linear(hidden_dim, 5)
        self.out_dim = 2 * self.image_shape[0] * size * size

    def forward(self, x: Tensor, error: Tensor, h_dec: Tensor) -> Tensor:
        C, H, W = self.image_shape
        window = window_parameters(self.window(h_dec), H, W, self.size)
        both = torch.stack([x, error], dim=1).reshape(-1, 2 * C, H, W)  # [B, 2C, H, W]
        return read_window(both, window).flatten(1)  # [B, 2 C N N]


class AttentionWrite(nn.Module):
    """``write(h^dec)`` with attention: a patch w = W(h^dec) written through its own window (eqs. 28-29)."""

    def __init__(self, hidden_dim: int, image_shape: Sequence[int], size: int) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.size = size
        self.window = nn.Linear(hidden_dim, 5)
        self.patch = nn.Linear(hidden_dim, self.image_shape[0] * size * size)

    def forward(self, h_dec: Tensor) -> Tensor:
        C, H, W = self.image_shape
        window = window_parameters(self.window(h_dec), H, W, self.size)
        patch = self.patch(h_dec).reshape(-1, C, self.size, self.size)  # [B, C, N, N]
        return write_window(patch, window).flatten(1)  # [B, C H W]

    def windows(self, h_dec: Tensor) -> AttentionWindow:
        """The write windows (for figures that draw where each step writes)."""
        C, H, W = self.image_shape
        return window_parameters(self.window(h_dec), H, W, self.size)


class FullRead(nn.Module):
    """``read(x, x^, h^dec) = [x, x^]`` without attention (eq. 17): ``[B, 2 D]``."""

    def __init__(self, hidden_dim: int, image_shape: Sequence[int]) -> None:
        super().__init__()
        self.out_dim = 2 * math.prod(image_shape)

    def forward(self, x: Tensor, error: Tensor, h_dec: Tensor) -> Tensor:
        return torch.cat([x, error], dim=-1)


class FullWrite(nn.Module):
    """``write(h^dec) = W(h^dec)`` without attention (eq. 18): ``[B, D]``."""

    def __init__(self, hidden_dim: int, image_shape: Sequence[int]) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_dim, math.prod(image_shape))

    def forward(self, h_dec: Tensor) -> Tensor:
        return full_precision(self.linear(h_dec))


__all__ = [
    "AttentionRead",
    "AttentionWindow",
    "AttentionWrite",
    "FullRead",
    "FullWrite",
    "filterbank",
    "read_window",
    "window_parameters",
    "write_window",
]
