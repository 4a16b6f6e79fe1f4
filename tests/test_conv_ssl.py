"""Convolutional M2, ADGM and SDGM (``network="conv"``): the M2 with convolutional networks of
Chen, Fang & Ju (2016, "When VAEs meet GANs", semi-supervised table), and the auxiliary models of
Maaløe et al. (2016) built the same way. The contract, exact enumeration over classes, the layers
as declared, the one-line error on flat data, and a few seconds of learning on the 8x8 digits."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import pogm
from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.evaluate.metrics import classification_error
from pogm.latents import DiagonalGaussian
from pogm.models import model_entry
from pogm.models.base import config_from_dict

K, B = 3, 6
IMAGE = (1, 8, 8)
SMALL = {"hidden": (16,), "z_dim": 3, "a_dim": 2, "conv_channels": (4, 8), "network": "conv"}
MODELS = ("m2", "adgm", "sdgm")


def build(name: str, image: tuple[int, ...] = IMAGE, seed: int = 0, **settings):
    """The model ``name`` sized from training images ``[12, *image]`` (or flat rows), as `pogm.train` sizes it."""
    cls = model_entry(name).cls
    train = PartialDataset.from_arrays(torch.rand(12, *image), torch.randint(K, (12,)), num_classes=K)
    values = cls.data_fields(math.prod(image), K, 60, 6, train)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    values.update({k: v for k, v in {**SMALL, **settings}.items() if k in fields})
    torch.manual_seed(seed)
    return cls(config_from_dict(cls.Config, values))


def make_batch(image: tuple[int, ...] = IMAGE, seed: int = 0) -> Batch:
    """``B`` binary images, a fifth of the pixels missing, the first half labelled."""
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.full((B, *image), 0.4), generator=g)  # [B, C, H, W]
    mask = torch.rand(B, *image, generator=g) > 0.2
    y = torch.randint(K, (B,), generator=g)
    return Batch(x={"x": torch.where(mask, x, 0.0)}, x_mask={"x": mask}, y=y, y_mask=torch.arange(B) < B // 2)


def x_networks(model) -> dict[str, nn.Module]:
    """The networks that read x, by attribute name."""
    names = ("q_y_x", "q_z_xy", "q_a_x", "q_y_ax", "q_z_axy", "p_a_xyz")
    return {n: getattr(model, n) for n in names if hasattr(model, n)}


def x_decoder(model) -> nn.Module:
    return model.p_x_ayz if getattr(model, "skip", False) else model.p_x_yz


def fixed_latents(monkeypatch) -> None:
    """One fixed value per Gaussian, so vectorised and looped passes see the same samples."""
    monkeypatch.setattr(DiagonalGaussian, "rsample", lambda self, n=None: (self.mean if n is None else self.mean.expand(n, *self.mean.shape)) + 0.1)


# ------------------------------------------------------------------ the contract
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("likelihood, image", [("bernoulli", IMAGE), ("gaussian-predicted", (2, 8, 6))])
def test_conv_models_give_a_finite_loss_gradients_everywhere_and_the_right_shapes(name, likelihood, image):
    model = build(name, image, likelihood=likelihood)
    batch = make_batch(image)
    terms = model.loss(batch, kl_weight=0.5)
    assert terms["loss"].dim() == 0 and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    for param_name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), param_name
    model.eval()
    D = math.prod(image)
    assert model.classify(batch).shape == (B, K)
    assert model.encode(batch).shape == (B, model.config.z_dim)
    assert model.reconstruct(batch).shape == (B, *image)
    assert model.sample(5).shape == (5, D) and model.sample(4, y=1).shape == (4, D)
    assert model.log_likelihood(batch, k=4, chunk_size=2).shape == (B,)
    assert torch.equal(model.impute(batch)[batch.x_mask["x"]], batch.x["x"][batch.x_mask["x"]])


# ------------------------------------------------------------------ exact enumeration over classes
def every_class_one_at_a_time(n: int) -> list[torch.Tensor]:
    """The one-hot ``[n, K]`` of each class in turn."""
    return [torch.nn.functional.one_hot(torch.full((n,), k), K).float() for k in range(K)]


def test_m2_conv_enumeration_over_classes_equals_a_loop_over_classes(monkeypatch):
    fixed_latents(monkeypatch)
    model = build("m2")
    x, mask = model.flat_x(make_batch())  # [B, D]
    enumerated = model.labelled_bound(x, mask, model.every_class)  # [K, B] in one pass
    looped = torch.stack([model.labelled_bound(x, mask, y) for y in every_class_one_at_a_time(B)])  # [K, B]
    torch.testing.assert_close(enumerated, looped)


@pytest.mark.parametrize("name", ["adgm", "sdgm"])
def test_auxiliary_conv_enumeration_over_classes_equals_a_loop_over_classes(name, monkeypatch):
    fixed_latents(monkeypatch)
    model = build(name)
    x, mask = model.flat_x(make_batch())  # [B, D]
    a = torch.randn(2, B, model.config.a_dim)  # [S, B, A]
    enumerated = model.bound_given_a(x, mask, a, model.every_class)  # [K, S, B]
    looped = torch.stack([model.bound_given_a(x, mask, a, y) for y in every_class_one_at_a_time(B)])  # [K, S, B]
    torch.testing.assert_close(enumerated, looped)


@pytest.mark.parametrize("name", MODELS)
def test_the_convolutions_run_once_on_x_for_every_class_and_sample_of_a(name):
    model = build(name, a_samples=3)
    seen: list[int] = []
    for network in x_networks(model).values():
        for conv in (m for m in network.modules() if isinstance(m, nn.Conv2d)):
            conv.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    model.loss(make_batch())
    assert seen and set(seen) <= {B, B // 2}  # all rows, or the labelled / unlabelled half; never K or S times as many


# ------------------------------------------------------------------ the layers as declared
def layers(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("name", MODELS)
def test_conv_networks_have_the_declared_layers_and_the_default_has_none(name):
    model = build(name, conv_channels=(4, 8))
    networks = x_networks(model)
    assert len(networks) == (2 if name == "m2" else 4 if name == "adgm" else 3)
    for label, network in networks.items():
        convs = layers(network, nn.Conv2d)
        assert [c.out_channels for c in convs] == [4, 8], label
        assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs), label
    deconvs = layers(x_decoder(model), nn.ConvTranspose2d)
    assert [d.out_channels for d in deconvs] == [4, IMAGE[0]]  # widest first, the image's channels last
    mlp = build(name, network="mlp")
    assert mlp.config.network == model_entry(name).cls.Config().network == "mlp"
    assert not layers(mlp, nn.Conv2d) and not layers(mlp, nn.ConvTranspose2d)


def test_the_convolutions_share_their_weights_over_positions():
    """Four times the pixels: the same convolution weights, while the fully connected first layer grows fourfold."""
    def conv_params(model) -> int:
        return sum(p.numel() for c in layers(model.q_y_x, nn.Conv2d) for p in c.parameters())

    small, large = build("m2", (1, 8, 8)), build("m2", (1, 16, 16))
    assert conv_params(small) == conv_params(large) > 0
    mlp_small, mlp_large = (build("m2", image, network="mlp").q_y_x.inputs[0].weight for image in ((1, 8, 8), (1, 16, 16)))
    assert mlp_large.numel() == 4 * mlp_small.numel()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", MODELS)
def test_conv_on_flat_data_is_a_one_line_error(name):
    with pytest.raises(ValueError, match=r"network='conv' needs images \[C, H, W\].*use network='mlp'") as error:
        build(name, (5,))
    assert "\n" not in str(error.value)
    assert build(name, (5,), network="mlp").classify(torch.rand(2, 5)).shape == (2, K)  # the MLP takes flat data


def test_an_unknown_network_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"unknown network 'cnn'; choose one of \['mlp', 'conv'\]"):
        build("adgm", network="cnn")


# ------------------------------------------------------------------ learning
def test_conv_m2_learns_the_digits_in_seconds(tmp_path):
    settings = {
        "model": {"network": "conv", "conv_channels": [16, 32], "hidden": [64], "z_dim": 4, "weighting": "per-batch"},
        "train": {"lr": 3e-3, "eval_every": 10, "progress": False, "threads": 1},
        "data": {"binarize": False},
    }
    run = pogm.train("m2", data="digits", labels=10, epochs=8, out=tmp_path / "m2", seed=0, config=settings, progress=False)
    assert layers(run.model.q_y_x, nn.Conv2d)  # the run did build the convolutional model
    error = classification_error(run.model, run.data.test)
    assert error < 0.45, error  # chance is 0.9; a few seconds give about 0.2
