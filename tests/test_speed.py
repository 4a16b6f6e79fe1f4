"""The speed work of issue 11 changes no result: counted work matches the executed work, and each
faster path computes what the plain one does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from pogm import flops
from pogm.data import Batch
from pogm.data.streams import sample_binary
from pogm.likelihoods import Bernoulli, masked_sum
from pogm.models import model_entry

K, D, LABELLED, UNLABELLED = 3, 20, 6, 7


def _batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    n = LABELLED + UNLABELLED
    x = torch.bernoulli(torch.full((n, D), 0.4), generator=g)
    y = torch.randint(0, K, (n,), generator=g)
    y_mask = torch.arange(n) < LABELLED
    return Batch(x={"x": x}, y=torch.where(y_mask, y, 0), y_mask=y_mask)


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("m2", {"z_dim": 4, "hidden": (16, 12)}),
        ("adgm", {"z_dim": 4, "a_dim": 5, "hidden": (16, 12), "a_samples": 2}),
        ("sdgm", {"z_dim": 4, "a_dim": 5, "hidden": (16, 12), "a_samples": 2}),
    ],
)
def test_counted_work_is_the_work_the_models_do(name, settings):
    """`pogm.flops` counts from the layer sizes exactly the matrix work that torch's FLOP counter
    sees in a forward and backward pass of the real model: nothing is computed twice."""
    entry = model_entry(name)
    model = entry.cls(entry.cls.Config(x_dim=D, num_classes=K, **settings))
    with FlopCounterMode(display=False) as counter:
        model.loss(_batch())["loss"].backward()
    c = model.config
    if name == "m2":
        gemms = flops.m2_step(D, K, c.z_dim, c.hidden, LABELLED, UNLABELLED)
    else:
        gemms = flops.adgm_step(D, K, c.a_dim, c.z_dim, c.hidden, LABELLED, UNLABELLED, c.a_samples, skip=name == "sdgm")
    assert counter.get_total_flops() == flops.training_flops(gemms)
    assert flops.training_flops(gemms) > 2 * flops.forward_flops(gemms)  # gradients counted


def test_m2_log_likelihood_work_is_counted():
    entry = model_entry("m2")
    model = entry.cls(entry.cls.Config(x_dim=D, num_classes=K, z_dim=4, hidden=(16, 12))).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.log_weights(_batch(), 9)
    assert counter.get_total_flops() == flops.forward_flops(flops.m2_log_likelihood(D, K, 4, (16, 12), LABELLED + UNLABELLED, 9))


def test_gemm_set_runs_the_shapes():
    shapes = [(8, 5, 3), (3, 8, 5)]
    gemms = flops.GemmSet(shapes)
    gemms.run()
    assert gemms.flops == 2 * (8 * 5 * 3 + 3 * 8 * 5)
    assert [out.shape for _, _, out in gemms.operands] == [(8, 3), (3, 5)]
    assert flops.gemm_seconds(shapes, windows=1, min_seconds=0.001) > 0


def test_sample_binary_is_bernoulli():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.0, 1.0, 0.25, 0.9]).repeat(20000, 1)  # [20000, 4]
    samples = sample_binary(p, g)
    assert samples.dtype == p.dtype and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert samples[:, 0].sum() == 0 and samples[:, 1].all()  # exact at 0 and 1
    assert torch.allclose(samples.mean(0), p[0], atol=0.015)  # 4 sigma of a mean of 20,000 draws is < 0.013


@pytest.mark.parametrize("mask_kind", ["none", "rows", "entries"])
def test_bernoulli_fast_path_matches_the_elementwise_formula(mask_kind):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5, 6, dtype=torch.double, generator=g, requires_grad=True)  # [K, B, D]
    x = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.double), generator=g)  # [B, D]
    mask = {"none": None, "rows": torch.tensor([[True], [False], [True], [True], [False]]), "entries": torch.rand(5, 6, generator=g) < 0.7}[mask_kind]
    got = Bernoulli().log_prob(logits, x, mask)
    elements = x * logits - F.softplus(logits)
    if mask is not None:
        elements = torch.where(mask, elements, 0.0)
    want = elements.sum(-1)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    weights = torch.randn(4, 5, dtype=torch.double, generator=g)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), logits)
    (grad_want,) = torch.autograd.grad((want * weights).sum(), logits)
    assert torch.allclose(grad_got, grad_want, rtol=0, atol=1e-12)
    if mask_kind == "rows":
        assert (grad_got[:, 1] == 0).all() and (got[:, 4] == 0).all()  # a hidden row gives nothing
    assert torch.autograd.gradcheck(lambda l: Bernoulli().log_prob(l, x, mask), (logits,))


def test_masked_sum_with_row_flags_equals_masking_each_entry():
    values = torch.randn(3, 4, 2, 5)
    values[0, 1] = float("inf")  # a hidden row may hold anything
    mask = torch.tensor([True, False, True, True]).reshape(4, 1, 1)
    fast = masked_sum(values, mask, 2)
    slow = torch.where(mask, values, 0.0).sum((-2, -1))
    assert torch.equal(fast, slow)


def test_fused_adam_follows_the_same_rule():
    """The Trainer's fused Adam takes the steps of the reference implementation."""
    from pogm.train.optimizers import adam

    torch.manual_seed(0)
    a, b = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    b.load_state_dict(a.state_dict())
    fused, plain = adam(list(a.parameters()), 1e-2, (0.9, 0.999)), torch.optim.Adam(b.parameters(), lr=1e-2)
    assert fused.defaults.get("fused")
    for step in range(5):
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
        for net, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            net(x).square().sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert not torch.equal(a.weight, torch.nn.Linear(6, 4).weight)


def test_compiled_loss_trains_like_the_eager_one(tmp_path):
    """``train.compile`` (off by default) changes the speed, not the training."""
    import pogm
    from safetensors.torch import load_file

    weights = {}
    for compiled in (False, True):
        overrides = {"model": {"hidden": [16], "z_dim": 2}, "train": {"max_steps": 3, "compile": compiled}, "data": {}}
        run = pogm.train("vae", data="digits", out=tmp_path / str(compiled), overrides=overrides, progress=False).dir
        weights[compiled] = load_file(str(run / "model.safetensors"))
    for name, value in weights[False].items():
        assert torch.allclose(value, weights[True][name], atol=1e-5), name
