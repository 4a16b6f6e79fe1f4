"""Matrix-multiply work of a training step, counted from the layer sizes, and the machine's rate.

A fully connected layer ``in -> out`` applied to ``rows`` rows is one GEMM of ``rows x in x out``
multiply-adds forward. Training adds the gradient with respect to the weights (the same work) and,
when the layer's input needs a gradient, the gradient with respect to the input (again the same).
Data inputs (the images, one-hot labels) need none, so a first layer on x costs 2 GEMMs, the others 3.

`m2_step`, `adgm_step` and `m2_log_likelihood` list the GEMMs that the models' equations need at a
given batch (the x part of a first layer once per example, the label part once per class, the rest
once per enumerated class and sample), independently of how pogm runs them; `benchmarks/speed.py`
divides this work by the measured time of a step, and by the rate at which this machine runs the
same GEMMs alone (`gemm_seconds`), to give the fraction of the matrix-multiply limit reached.
`tests/test_speed.py` checks the counts against torch's FLOP counter on the real models, so the
models do no matrix work beyond what is counted here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Gemm:
    """``rows x inputs`` times ``inputs x outputs``; ``input_grad``: the input needs a gradient."""

    rows: int
    inputs: int
    outputs: int
    input_grad: bool = True

    @property
    def forward_flops(self) -> int:
        return 2 * self.rows * self.inputs * self.outputs

    def training_shapes(self) -> list[tuple[int, int, int]]:
        """(m, k, n) of the forward GEMM, the weight gradient and (if needed) the input gradient."""
        shapes = [(self.rows, self.inputs, self.outputs), (self.outputs, self.rows, self.inputs)]
        if self.input_grad:
            shapes.append((self.rows, self.outputs, self.inputs))
        return shapes


def forward_flops(gemms: Sequence[Gemm]) -> int:
    return sum(g.forward_flops for g in gemms)


def training_flops(gemms: Sequence[Gemm]) -> int:
    """Forward, weight-gradient and input-gradient work of ``gemms``."""
    return sum(2 * m * k * n for g in gemms for m, k, n in g.training_shapes())


def mlp(rows: int, first: Sequence[tuple[int, int, bool]], hidden: Sequence[int], out: int) -> list[Gemm]:
    """An MLP whose first layer sums one linear map per input: ``first`` lists (rows, width,
    needs gradient) per input; the later layers run on ``rows`` rows."""
    gemms = [Gemm(r, width, hidden[0], grad) for r, width, grad in first]
    widths = [*hidden, out]
    gemms += [Gemm(rows, widths[i], widths[i + 1]) for i in range(len(widths) - 1)]
    return gemms


def m2_step(x_dim: int, num_classes: int, z_dim: int, hidden: Sequence[int], labelled: int, unlabelled: int) -> list[Gemm]:
    """M2's training step (Kingma et al. 2014, eqs. 6, 7, 9) on ``labelled`` + ``unlabelled`` rows:
    q(y|x) on every row; q(z|x,y) and p(x|y,z) on each labelled row with its class and each
    unlabelled row with every class (its x part once per row, its label part once per class)."""
    K, rows = num_classes, labelled + unlabelled
    pairs = labelled + K * unlabelled  # (x, y) pairs of the bounds
    labels = labelled + K  # one-hot rows: one per labelled row, one per class for the rest
    return [
        *mlp(rows, [(rows, x_dim, False)], hidden, K),  # q(y|x)
        *mlp(pairs, [(rows, x_dim, False), (labels, K, False)], hidden, 2 * z_dim),  # q(z|x,y)
        *mlp(pairs, [(pairs, z_dim, True), (labels, K, False)], list(reversed(hidden)), x_dim),  # p(x|y,z)
    ]


def adgm_step(
    x_dim: int, num_classes: int, a_dim: int, z_dim: int, hidden: Sequence[int], labelled: int, unlabelled: int, a_samples: int = 1, skip: bool = False
) -> list[Gemm]:
    """The ADGM's (or, ``skip``, the SDGM's) training step (Maaløe et al. 2016): q(a|x) and q(y|a,x)
    on every row and sample of a; q(z|a,y,x), p(a|.) and p(x|.) on every (row, class, sample)."""
    K, S, rows = num_classes, a_samples, labelled + unlabelled
    samples = S * rows  # (row, a) pairs
    pairs = S * (labelled + K * unlabelled)  # (row, a, y) triples
    labels = labelled + K
    down = list(reversed(hidden))
    gemms = [
        *mlp(rows, [(rows, x_dim, False)], hidden, 2 * a_dim),  # q(a|x)
        *mlp(samples, [(rows, x_dim, False), (samples, a_dim, True)], hidden, K),  # q(y|a,x)
        *mlp(pairs, [(rows, x_dim, False), (samples, a_dim, True), (labels, K, False)], hidden, 2 * z_dim),  # q(z|a,y,x)
    ]
    if skip:
        gemms += mlp(pairs, [(pairs, z_dim, True), (labels, K, False)], down, 2 * a_dim)  # p(a|y,z)
        gemms += mlp(pairs, [(pairs, z_dim, True), (labels, K, False), (samples, a_dim, True)], down, x_dim)  # p(x|a,y,z)
    else:
        gemms += mlp(pairs, [(pairs, z_dim, True), (labels, K, False), (rows, x_dim, False)], down, 2 * a_dim)  # p(a|x,y,z)
        gemms += mlp(pairs, [(pairs, z_dim, True), (labels, K, False)], down, x_dim)  # p(x|y,z)
    return gemms


def m2_log_likelihood(x_dim: int, num_classes: int, z_dim: int, hidden: Sequence[int], images: int, samples: int) -> list[Gemm]:
    """Forward GEMMs of M2's importance-weighted log-likelihood: ``samples`` draws of (y, z) per image."""
    K, pairs = num_classes, images * samples
    return [
        *mlp(images, [(images, x_dim, False)], hidden, K),
        *mlp(pairs, [(images, x_dim, False), (pairs, K, False)], hidden, 2 * z_dim),
        *mlp(pairs, [(pairs, z_dim, True), (pairs, K, False)], list(reversed(hidden)), x_dim),
    ]


# ------------------------------------------------------------------------------------------ rates
class GemmSet:
    """The GEMMs ``(m, k, n)`` of ``shapes`` with preallocated random operands; `run` does each once,
    back to back, with ``torch.mm`` into preallocated outputs (at the current thread setting)."""

    def __init__(self, shapes: Sequence[tuple[int, int, int]], dtype: torch.dtype = torch.float32) -> None:
        generator = torch.Generator().manual_seed(0)
        self.operands = [
            (torch.randn(m, k, generator=generator).to(dtype), torch.randn(k, n, generator=generator).to(dtype), torch.empty(m, n, dtype=dtype))
            for m, k, n in shapes
        ]
        self.flops = sum(2 * m * k * n for m, k, n in shapes)

    def run(self) -> None:
        for a, b, out in self.operands:
            torch.mm(a, b, out=out)

    def seconds(self, min_seconds: float = 0.2) -> float:
        """Mean time of one `run` over repetitions lasting at least ``min_seconds``."""
        start, count = time.perf_counter(), 0
        while count == 0 or time.perf_counter() - start < min_seconds:
            self.run()
            count += 1
        return (time.perf_counter() - start) / count


def gemm_seconds(shapes: Sequence[tuple[int, int, int]], dtype: torch.dtype = torch.float32, windows: int = 5, min_seconds: float = 0.2) -> float:
    """Median over ``windows`` of the time of one pass over the GEMMs of ``shapes`` (`GemmSet`)."""
    gemms = GemmSet(shapes, dtype)
    gemms.run()  # warm-up
    return sorted(gemms.seconds(min_seconds) for _ in range(windows))[windows // 2]


def peak_gemm_rate(size: int = 2048, dtype: torch.dtype = torch.float32, windows: int = 5) -> float:
    """FLOP/s of one large square GEMM: the machine's matrix-multiply peak as PyTorch reaches it."""
    return 2 * size**3 / gemm_seconds([(size, size, size)], dtype, windows)
