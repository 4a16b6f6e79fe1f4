"""HALI with Table 4's spatial z_1 (Belghazi et al. 2018): the shapes of both layouts, the
discriminator that joins z_1 along the channel axis, residual blocks and bilinear upsampling,
section 4's dropout and noise as placed, innovation on draws, semi-supervised HALI on a feature
map, save and load, and the figures."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
import torch
from torch import nn

import pogm
from pogm.checkpoint import load_weights, save_weights
from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.models.base import config_from_dict, config_to_dict
from pogm.models.hali.hali import ALI, HALI, SemiSupervisedHALI
from pogm.nn.spatial import ResidualBlock, SpatialJointDiscriminator, closing_sizes, halvings

SPATIAL = {
    "x_dim": 64, "image_shape": (1, 8, 8), "architecture": "spatial", "z1_shape": (3, 4, 4), "z_dims": (0, 5),
    "spatial_width": 4, "discriminator_joint_hidden": (8,),
}


def tiny(cls=HALI, **overrides):
    return cls(config_from_dict(cls.Config, {**SPATIAL, **overrides}))


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def mnist_like(n: int = 4) -> PartialDataset:
    return PartialDataset.from_arrays(torch.rand(n, 1, 28, 28))


# ----------------------------------------------------------------------------- shapes of both layouts


def test_spatial_z1_is_a_feature_map_and_z2_a_vector():
    model = tiny().eval()
    x = images().reshape(6, -1)
    z1, z2 = model.encode_chain(x)
    assert z1.shape == (6, 3, 4, 4) and z2.shape == (6, 5)
    assert model.z_shapes == [(3, 4, 4), (5,)]
    logits, (d1, d2) = model.decode_from(z2, 2)
    assert logits.shape == (6, 64) and d1.shape == (6, 3, 4, 4) and d2 is z2
    assert model.prior_chain(2)[1][0].shape == (2, 3, 4, 4)
    assert model.sample(3).shape == (3, 64)
    assert model.encode(x).shape == (6, 3 * 16 + 5) and model.encode(x, level=1).shape == (6, 3, 4, 4)
    # The Markov structure holds: the decoder of z_1 sees only z_2.
    x.requires_grad_(True)
    _, z2_enc = model.encode_chain(x)
    _, (z1_dec, _) = model.decode_from(z2_enc.detach().requires_grad_(True), 2, sample=False)
    assert torch.autograd.grad(z1_dec.sum(), x, allow_unused=True)[0] is None


def test_three_levels_and_ali_with_a_spatial_z1():
    deep = tiny(z_dims=(0, 5, 4), hidden=(8,)).eval()
    zs = deep.encode_chain(images().reshape(6, -1))
    assert [tuple(z.shape[1:]) for z in zs] == [(3, 4, 4), (5,), (4,)] and deep.sample(2).shape == (2, 64)
    assert torch.isfinite(deep.train().loss(Batch(x={"x": images()}))["loss"])
    ali = tiny(ALI, z_dims=(0,)).eval()  # one level: z_1 ~ N(0, I) as a map
    assert ali.prior_chain(2)[1][0].shape == (2, 3, 4, 4) and ali.discriminator(images(2).reshape(2, -1), ali.encode_chain(images(2).reshape(2, -1)))[0].shape == (2,)


def test_flat_layouts_keep_a_vector_z1():
    for architecture in ("mlp", "dcgan"):
        model = tiny(architecture=architecture, z_dims=(6, 5), hidden=(12,), channels=(4,), discriminator_hidden=(8,)).eval()
        z1, z2 = model.encode_chain(images().reshape(6, -1))
        assert z1.shape == (6, 6) and z2.shape == (6, 5) and model.z_shapes == [(6,), (5,)]
        assert not any(isinstance(m, ResidualBlock) for m in model.modules())


def test_mnist_images_get_a_spatial_z1_by_default_and_flat_data_a_vector():
    fields = HALI.data_fields(784, 10, 4, 0, mnist_like())
    config = config_from_dict(HALI.Config, fields)
    assert config.architecture == "spatial" and config.z1_shape == (16, 14, 14)  # written into the run's config
    assert HALI(config).z_shapes == [(16, 14, 14), (32,)]
    flat = HALI.data_fields(10, None, 4, 0, PartialDataset.from_arrays(torch.rand(4, 10)))
    assert flat["architecture"] == "mlp"
    assert ALI.data_fields(784, 10, 4, 0, mnist_like())["architecture"] == "mlp"  # Dumoulin et al.'s vector z
    with pytest.raises(ValueError, match="architecture='spatial' needs images"):
        tiny(x_dim=10, image_shape=(1, 1, 10))
    with pytest.raises(ValueError, match="no number of stride-2 halvings"):
        tiny(z1_shape=(3, 3, 3))
    with pytest.raises(ValueError, match="unknown architecture"):
        tiny(architecture="resnet")


def _mnist_present() -> bool:
    return any((Path(p) / "mnist.npz").is_file() for p in os.environ.get("POGM_DATA", "").split(os.pathsep) if p)


@pytest.mark.skipif(not _mnist_present(), reason="mnist.npz not in $POGM_DATA")
def test_pogm_builds_hali_on_mnist_with_a_spatial_z1():
    from pogm.runs import build_model

    model = build_model("hali", "mnist")
    assert model.config.architecture == "spatial" and model.z_shapes == [(16, 14, 14), (32,)]
    assert build_model("hali", "mnist", {"model": {"architecture": "mlp"}}).z_shapes == [(64,), (32,)]


def test_the_sizes_of_the_paths():
    assert halvings((28, 28), (14, 14)) == 1 and halvings((28, 28), (7, 7)) == 2 and halvings((32, 32), (16, 16)) == 1
    assert closing_sizes((14, 14)) == [(14, 14), (7, 7), (4, 4)] and closing_sizes((16, 16)) == [(16, 16), (8, 8), (4, 4)]


# ----------------------------------------------------------------------------- Table 4's networks


def test_encoder_and_decoder_use_residual_blocks_strided_convolutions_and_bilinear_upsampling():
    model = tiny()

    def kinds(module):
        return list(module.modules())

    for network in (model.encoder[0], model.encoder[1], model.decoder[0], model.generator):
        assert any(isinstance(m, ResidualBlock) for m in kinds(network)), type(network.net if hasattr(network, "net") else network)
    # Down: stride-2 convolutions; up: bilinear upsampling (never transposed convolutions).
    assert any(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in kinds(model.encoder[0]))
    larger = tiny(x_dim=256, image_shape=(1, 16, 16), z1_shape=(3, 8, 8))  # p(z_1 | z_2) goes 4 x 4 -> 8 x 8
    for network in (larger.decoder[0], larger.generator, model.generator):
        ups = [m for m in kinds(network) if isinstance(m, nn.Upsample)]
        assert ups and all(m.mode == "bilinear" for m in ups)
    assert larger.decoder[0](torch.randn(2, 5))[0].shape == (2, 3, 8, 8)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in [*model.modules(), *larger.modules()])
    # A residual block adds its input back: with its body silenced it is the activation of its input.
    block = ResidualBlock(4).eval()
    for p in block.body.parameters():
        nn.init.zeros_(p)
    h = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(block(h), nn.functional.leaky_relu(h, 0.2))


def test_the_discriminator_joins_z1_along_the_channel_axis_then_z2():
    torch.manual_seed(0)
    model = tiny(spatial_retention=1.0).eval()
    D = model.discriminator
    assert isinstance(D, SpatialJointDiscriminator)
    first = next(m for m in D.z1_stage.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 8 + 3  # D(x)'s 8 channels at 4 x 4 and z_1's 3
    assert D.latent_stages[0][0].in_features == 8 + 5  # D(x, z_1)'s 8 features at 1 x 1, then z_2
    x = images().reshape(6, -1)
    z1, z2 = model.encode_chain(x)
    logit, features = D(x, [z1, z2])
    assert logit.shape == (6,) and features.shape == (6, 8)
    # Changing z_1 (one channel of one row) or z_2 changes D's output; x alone does not decide it.
    z1_other = z1.clone()
    z1_other[0, 1] += 1.0
    assert not torch.allclose(D(x, [z1_other, z2])[0][0], logit[0]) and torch.allclose(D(x, [z1_other, z2])[0][1:], logit[1:])
    assert not torch.allclose(D(x, [z1, z2 + 1.0])[0], logit)
    # Every position of z_1 reaches D: its gradient is non-zero over the whole map.
    z1 = z1.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, [z1, z2])[0].sum(), z1)
    assert (grad.abs().sum((0, 1)) > 0).all()


def _dropout_after(D: SpatialJointDiscriminator) -> list[tuple[int, float]]:
    """``(layer number, drop probability)`` of each dropout, layers counted from D's input."""
    count, placed = 0, []
    for module in D.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module is not D.out:
            count += 1
        elif isinstance(module, nn.Dropout):
            placed.append((count, module.p))
    return placed


def test_dropout_keeps_units_with_probability_0_2_after_every_third_layer_of_d():
    D = tiny().discriminator  # 3 layers of D(x), 2 of D(x, z_1) (3x3, then valid on 4 x 4), 1 where z_2 joins
    assert _dropout_after(D) == [(3, pytest.approx(0.8)), (6, pytest.approx(0.8))]
    assert _dropout_after(tiny(spatial_dropout_every=1, spatial_retention=0.5).discriminator) == [(i, 0.5) for i in range(1, 7)]
    # On MNIST: D(x) 28 -> 14 in 3 layers, D(x, z_1) 14 -> 7 -> 4 -> 1 in 4, z_2's stage 1.
    mnist = SpatialJointDiscriminator((1, 28, 28), (16, 14, 14), (32,))
    assert _dropout_after(mnist) == [(3, pytest.approx(0.8)), (6, pytest.approx(0.8))]
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in mnist.modules()) == 9  # 8 layers and the logit
    assert _dropout_after(tiny(spatial_retention=1.0).discriminator) == []
    # Dropout acts in training only.
    model = tiny(input_noise=0.0)
    x = images().reshape(6, -1)
    zs = model.eval().encode_chain(x)
    torch.testing.assert_close(model.discriminator(x, zs)[0], model.discriminator(x, zs)[0])
    model.train()
    assert not torch.allclose(model.discriminator(x, zs)[0], model.discriminator(x, zs)[0])
    with pytest.raises(ValueError, match="retention"):
        tiny(spatial_retention=0.0)


def test_noise_goes_on_the_data_input_of_d_only(monkeypatch):
    model = tiny(spatial_retention=1.0, input_noise=0.3).train()
    x = images().reshape(6, -1)
    zs = [z.detach() for z in model.encode_chain(x)]
    shapes = []
    original = torch.randn_like
    monkeypatch.setattr(torch, "randn_like", lambda t, *a, **k: shapes.append(tuple(t.shape)) or original(t, *a, **k))
    model.discriminator(x, zs)
    assert shapes == [(6, 64)]  # x only, not z_1 (6, 3, 4, 4) or z_2 (6, 5)
    shapes.clear()
    model = tiny(spatial_retention=1.0, input_noise=0.3, spatial_latent_noise=True).train()
    model.discriminator(x, zs)
    assert shapes == [(6, 64), (6, 3, 4, 4), (6, 5)]  # the other reading: every input of D


def test_weight_normalisation_of_ds_convolutions_is_a_setting():
    def normalised(model):
        return [hasattr(m, "parametrizations") for m in model.discriminator.modules() if isinstance(m, nn.Conv2d)]

    assert all(normalised(tiny())) and not any(normalised(tiny(spatial_weight_norm=False)))


# ----------------------------------------------------------------------------- what the hierarchy offers


def test_reconstructions_inpainting_and_traversals_on_a_spatial_z1():
    torch.manual_seed(0)
    model = tiny().eval()
    x = images(4)
    for level in (1, 2):
        assert model.reconstruct(x, level=level).shape == x.shape
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, :, 2:6, 2:6] = False
    filled = model.impute(Batch(x={"x": torch.where(mask, x, torch.zeros(()))}, x_mask={"x": mask}))
    assert torch.equal(filled[mask], x[mask]) and ((filled[~mask] > 0) & (filled[~mask] < 1)).all()
    # A coordinate of z_1 is a whole feature map (section 6.2): 3 of them.
    torch.manual_seed(3)
    traversed = model.traverse(level=1, coordinate=2, scales=torch.tensor([1.0, 1.0, -3.0]), n=2)
    assert traversed.shape == (3, 2, 64)
    torch.testing.assert_close(traversed[0], traversed[1])
    assert not torch.allclose(traversed[0], traversed[2])
    with pytest.raises(ValueError, match="coordinate"):
        model.traverse(level=1, coordinate=3, scales=torch.tensor([1.0]))
    metrics = model.validation_metrics(PartialDataset.from_arrays(images(10)))
    assert set(metrics) == {f"reconstruction_l{l}_{kind}" for l in (1, 2) for kind in ("euclidean", "discriminator")}


def test_innovation_draws_as_the_paper_writes_it_or_follows_means():
    model = tiny().eval()
    x = images(4)
    # Draws: alpha = 1 leaves eta = 0 (one noise draw for both decodings), so the image is G_x of the drawn z^_1.
    torch.manual_seed(5)
    same = model.innovate(x, coordinate=1, alpha=1.0)
    torch.manual_seed(5)
    torch.testing.assert_close(same, model.reconstruct(x, level=1, sample=True))
    torch.manual_seed(5)
    assert not torch.allclose(model.innovate(x, coordinate=1, alpha=3.0), same)
    # Means: deterministic, and alpha = 1 is the level-1 reconstruction from means.
    torch.testing.assert_close(model.innovate(x, 1, 1.0, sample=False), model.reconstruct(x, level=1, sample=False))
    mean_model = tiny(innovation="mean").eval()
    mean_model.load_state_dict(model.state_dict())
    torch.testing.assert_close(mean_model.innovate(x, 1, 2.0), model.innovate(x, 1, 2.0, sample=False))
    with pytest.raises(ValueError, match="unknown innovation"):
        tiny(innovation="median")


def test_semi_supervised_hali_reads_a_flattened_or_pooled_spatial_z1():
    torch.manual_seed(0)
    x, y = images(8), torch.tensor([0, 1, 2, 1, 0, 0, 0, 0])
    labelled = torch.arange(8) < 4
    for pooling, width in (("flatten", 3 * 16 + 5), ("mean", 3 + 5)):
        model = tiny(SemiSupervisedHALI, num_classes=3, classifier_pooling=pooling)
        assert model.classifier.in_features == width
        terms = model.loss(Batch(x={"x": x}, y=y, y_mask=labelled))
        assert terms["supervised"] > 0 and torch.isfinite(terms["loss"])
        grads = torch.autograd.grad(terms["loss/generator"], [model.classifier.weight, next(model.encoder[0].parameters())])
        assert all(g.abs().sum() > 0 for g in grads)  # eq. 10 reaches the softmax and q(z_1 | x)
        torch.testing.assert_close(model.eval().classify(x).exp().sum(-1), torch.ones(8))
    assert tiny(SemiSupervisedHALI, num_classes=3, classifier_levels=(1,)).classifier.in_features == 3 * 16


# ----------------------------------------------------------------------------- save, load, figures


def test_save_and_load_give_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    model.loss(Batch(x={"x": images(6)}))  # batch-norm statistics move
    model.eval()
    save_weights(tmp_path / "model.safetensors", model)
    config = config_from_dict(HALI.Config, config_to_dict(model.config))  # as a run's config.yaml reads back
    assert config == model.config
    torch.manual_seed(1)
    loaded = HALI(config)
    load_weights(tmp_path / "model.safetensors", loaded)
    loaded.eval()
    x = images(4).reshape(4, -1)
    zs = model.encode_chain(x, sample=False)
    for a, b in zip(zs, loaded.encode_chain(x, sample=False)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(model.discriminator(x, zs)[0], loaded.discriminator(x, zs)[0])
    torch.testing.assert_close(model.decode_from(zs[1], 2, sample=False)[0], loaded.decode_from(zs[1], 2, sample=False)[0])


def test_the_figures_are_written_for_a_spatial_z1(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    data = SimpleNamespace(test=PartialDataset.from_arrays(images(12)))
    paths = model.figures(data, tmp_path)
    names = {Path(p).name for p in paths}
    assert {"samples.png", "hierarchical-reconstructions.png", "inpainting.png", "traversal-z1.png", "traversal-z2.png", "innovation.png"} <= names
    assert all(Path(p).stat().st_size > 0 for p in paths)


def test_a_trained_runs_config_and_report_name_the_spatial_z1(tmp_path):
    from pogm.evaluate.report import write_report

    overrides = {"model": {"spatial_width": 4}, "train": {"max_steps": 2, "batch_size": 16, "eval_every": 10**6}}
    run_dir = pogm.train("hali", data="digits", out=tmp_path / "hali", seed=0, overrides=overrides, progress=False).dir
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model_config"]["architecture"] == "spatial"
    z1_shape = config["model_config"]["z1_shape"]
    assert len(z1_shape) == 3  # channels x height x width
    report = write_report(run_dir, weights="latest")  # digits: 8 x 8 images, z1 a 4 x 4 map
    assert report["model_config"]["z1_shape"] == z1_shape


@pytest.mark.parametrize("architecture", ["spatial", "mlp"])
def test_latent_init_std_starts_every_latent_kernel_near_that_std_and_the_default_near_1(architecture):
    overrides = {} if architecture == "spatial" else {"architecture": "mlp", "z_dims": (6, 5), "hidden": (8,)}
    x = images().reshape(6, -1)

    def stds(model):
        model.eval()
        z1 = model.encode_chain(x)[0]
        heads = [model.encoder[0](x), model.encoder[1](z1), model.decoder[0](torch.randn(6, 5))]
        return [float((0.5 * log_var.detach()).exp().median()) for _, log_var in heads]

    torch.manual_seed(0)
    assert all(0.09 < s < 0.11 for s in stds(tiny(latent_init_std=0.1, **overrides)))
    torch.manual_seed(0)
    assert all(0.3 < s < 3.0 for s in stds(tiny(**overrides)))
    with pytest.raises(ValueError, match="positive number"):
        tiny(latent_init_std=0.0, **overrides)
