"""`train.precision=bf16` autocasts the matrix multiplies only: the networks hand their outputs on in
float32, so samples, densities and the objective are computed in full precision."""

from __future__ import annotations

import pytest
import torch

from pogm.data import Batch
from pogm.models import model_entry
from pogm.nn import MLP, ConvEncoder, DeconvDecoder, GaussianHead, LinearOutput, full_precision
from pogm.nn.grouped import GroupGenerator

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


@pytest.mark.parametrize(
    ("network", "inputs"),
    [
        (lambda: MLP(12, [16], 5, batch_norm=True), lambda: (torch.randn(4, 12),)),
        (lambda: GaussianHead(torch.nn.Linear(12, 10)), lambda: (torch.randn(4, 12),)),
        (lambda: LinearOutput(12, 3), lambda: (torch.randn(4, 12),)),
        (lambda: ConvEncoder((1, 8, 8), [4, 6]), lambda: (torch.randn(4, 1, 8, 8),)),
        (lambda: DeconvDecoder(6, (1, 8, 8), [4, 6], 1), lambda: (torch.randn(4, 6),)),
        (lambda: GroupGenerator(4, 3, [], 5), lambda: (torch.randn(4, 4),)),
    ],
    ids=["mlp", "gaussian-head", "linear-output", "conv-encoder", "deconv-decoder", "group-generator"],
)
def test_network_outputs_are_float32_under_autocast(network, inputs):
    net = network()
    with torch.autocast(**BF16):
        out = net(*inputs())
    for tensor in out if isinstance(out, tuple) else (out,):
        assert tensor.dtype == torch.float32


def test_full_precision_leaves_other_dtypes_alone():
    x = torch.randn(3, dtype=torch.float64)
    assert full_precision(x) is x
    b = x.bfloat16()
    assert full_precision(b) is b  # outside autocast a bfloat16 tensor is the caller's choice


@pytest.mark.parametrize("name", ["m2", "sdgm"])
def test_bf16_objective_matches_fp32(name):
    """With the same weights and random draws, the bf16 objective of a paper-sized model is the fp32
    one up to the rounding of the matrix multiplies. When the outputs stayed bfloat16 the SDGM's
    bound moved by about a nat per example (8-bit mantissas over 784 pixels and 100 latent units)."""
    entry = model_entry(name)
    settings = {"z_dim": 100, "hidden": (500, 500)} | ({"a_dim": 100} if name == "sdgm" else {})
    torch.manual_seed(0)
    model = entry.cls(entry.cls.Config(x_dim=784, num_classes=10, **settings))
    g = torch.Generator().manual_seed(1)
    n, labelled = 64, 32
    x = torch.bernoulli(torch.full((n, 784), 0.15), generator=g)
    y_mask = torch.arange(n) < labelled
    batch = Batch(x={"x": x}, y=torch.where(y_mask, torch.randint(0, 10, (n,), generator=g), 0), y_mask=y_mask)

    def loss(**autocast) -> float:
        torch.manual_seed(2)
        with torch.no_grad(), torch.autocast(**autocast):
            return float(model.loss(batch)["loss"])

    full, mixed = loss(device_type="cpu", enabled=False), loss(**BF16)
    assert abs(mixed - full) < 0.1, (mixed, full)


@pytest.mark.parametrize("units", [False, True])
def test_bf16_on_a_cpu_without_bf16_units_warns(units, monkeypatch, tmp_path):
    """bf16 autocast on a CPU without AVX512-BF16 or AMX runs emulated matrix multiplies, slower than
    fp32: the Trainer says so and names the fix; on a CPU with them it says nothing."""
    import warnings

    from pogm.data.dataset import PartialDataset
    from pogm.data.streams import SemiSupervisedStream
    from pogm.train import trainer as trainer_module
    from pogm.train.trainer import TrainConfig, Trainer

    monkeypatch.setattr(trainer_module, "cpu_has_bf16_units", lambda: units)
    entry = model_entry("m2")
    model = entry.cls(entry.cls.Config(x_dim=8, num_classes=2, z_dim=2, hidden=(4,)))
    x, y = torch.rand(10, 8), torch.randint(0, 2, (10,))
    stream = SemiSupervisedStream(PartialDataset.from_arrays(x, y, num_classes=2), torch.arange(4), batch_size=4, labelled_batch_size=2, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(model, stream, TrainConfig(progress=False, precision="bf16"), tmp_path)
    messages = [str(w.message) for w in caught if "bfloat16 matrix units" in str(w.message)]
    assert len(messages) == (0 if units else 1)
    assert units or "set train.precision=fp32" in messages[0]
