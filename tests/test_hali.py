"""ALI and HALI: Algorithm 1's losses, the Markov structure of both chains, inpainting, innovation,
traversals, the semi-supervised cost and the linear probe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.models.base import config_from_dict
from pogm.models.hali.hali import ALI, HALI, SemiSupervisedHALI
from pogm.objectives.adversarial import discriminator_loss, joint_generator_loss

SMALL = {"x_dim": 16, "image_shape": (1, 4, 4), "architecture": "mlp", "hidden": (12,), "discriminator_hidden": (10,), "discriminator_joint_hidden": (8,)}  # a vector z_1 (tests/test_hali_spatial.py: a feature map)


def tiny(cls=HALI, **overrides):
    return cls(config_from_dict(cls.Config, {**SMALL, "z_dims": (6, 3), **overrides}))


def test_algorithm_1_losses_in_probability_form():
    logits_q, logits_p = torch.randn(7), torch.randn(7)
    rho_q, rho_p = torch.sigmoid(logits_q), torch.sigmoid(logits_p)
    torch.testing.assert_close(discriminator_loss(logits_q, logits_p), -(rho_q.log().mean() + (1 - rho_p).log().mean()))
    torch.testing.assert_close(joint_generator_loss(logits_q, logits_p), -((1 - rho_q).log().mean() + rho_p.log().mean()))
    torch.testing.assert_close(joint_generator_loss(logits_q, logits_p, "minimax"), -discriminator_loss(logits_q, logits_p))
    with pytest.raises(ValueError, match="unknown generator loss"):
        joint_generator_loss(logits_q, logits_p, "wasserstein")


def test_the_hierarchy_has_the_configured_shapes_and_markov_structure():
    model = tiny(z_dims=(6, 3)).eval()
    x = torch.rand(5, 16)
    z1, z2 = model.encode_chain(x)
    assert z1.shape == (5, 6) and z2.shape == (5, 3)
    logits, (d1, d2) = model.decode_from(z2, 2)
    assert logits.shape == (5, 16) and d1.shape == (5, 6) and d2 is z2
    # Each kernel reads the level next to it only: q(z2 | z1), p(z1 | z2), G_x(z1).
    assert model.encoder[1].net.inputs[0].in_features == 6
    assert model.decoder[0].net.inputs[0].in_features == 3
    assert model.generator.inputs[0].in_features == 6
    # The decoder of z1 sees only z2: its output has no gradient path to x or to the encoder's z1.
    x.requires_grad_(True)
    z1_enc, z2_enc = model.encode_chain(x)
    _, (z1_dec, _) = model.decode_from(z2_enc.detach().requires_grad_(True), 2, sample=False)
    assert torch.autograd.grad(z1_dec.sum(), x, allow_unused=True)[0] is None
    # The encoder of z2 sees only z1: fixing z1's draw fixes q(z2 | .) whatever x was.
    z1_fixed = torch.randn(5, 6)
    q_a = model.encoder[1](z1_fixed)[0]
    q_b = model.encoder[1](z1_fixed)[0]
    torch.testing.assert_close(q_a, q_b)
    # D sees x first, then z1 joins, then z2.
    assert model.discriminator.latent_stages[0][0].in_features == 10 + 6
    assert model.discriminator.latent_stages[1][0].in_features == 8 + 3


def test_convolutional_hali_reads_and_writes_images_and_keeps_the_hierarchy():
    model = tiny(image_shape=(1, 4, 4), architecture="dcgan", channels=(3,)).eval()
    assert isinstance(model.encoder[0].net.conv.net[0], torch.nn.Conv2d)  # q(z_1 | x) convolves the image
    assert isinstance(model.discriminator.conv_stage[0], torch.nn.Conv2d)  # so does D(x)
    assert model.encoder[1].net.inputs[0].in_features == 6 and model.decoder[0].net.inputs[0].in_features == 3
    x = torch.rand(5, 16)
    z1, z2 = model.encode_chain(x)
    logits, (d1, _) = model.decode_from(z2, 2)
    assert z1.shape == (5, 6) and z2.shape == (5, 3) and logits.shape == (5, 16) and d1.shape == (5, 6)
    logit, features = model.discriminator(x, [z1, z2])
    assert logit.shape == (5,) and features.shape == (5, 8)
    with pytest.raises(ValueError, match="unknown architecture"):
        tiny(architecture="resnet")


def test_ali_is_one_level_and_has_no_innovation():
    model = ALI(config_from_dict(ALI.Config, {**SMALL, **{k: v for k, v in ALI.data_fields(16, None, 10, 0, None).items() if k == "z_dims"}}))
    assert model.levels == 1 and model.config.z_dims == (64,)
    with pytest.raises(ValueError, match="two levels"):
        model.innovate(torch.rand(2, 16), 0, 2.0)


def test_inpainting_keeps_observed_pixels_and_fills_the_hole_from_the_model():
    torch.manual_seed(0)
    model = tiny().eval()
    x = torch.rand(6, 1, 4, 4)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, :, 1:3, 1:3] = False
    batch = Batch(x={"x": torch.where(mask, x, torch.zeros(()))}, x_mask={"x": mask})
    filled = model.impute(batch)
    assert torch.equal(filled[mask], x[mask])  # bit for bit
    assert (filled[~mask] != 0).all() and ((filled[~mask] > 0) & (filled[~mask] < 1)).all()


def test_inpainting_runs_top_level_first_then_lower(monkeypatch):
    model = tiny().eval()
    levels = []
    original = model.reconstruct_flat
    monkeypatch.setattr(model, "reconstruct_flat", lambda x, level, sample=True: levels.append(level) or original(x, level, sample))
    mask = torch.rand(3, 1, 4, 4) > 0.5
    model.impute(Batch(x={"x": torch.rand(3, 1, 4, 4) * mask}, x_mask={"x": mask}), sweeps=2)
    assert levels == [2, 2, 1, 1]


def test_innovation_with_alpha_one_is_the_first_level_reconstruction_from_means():
    torch.manual_seed(1)
    model = tiny().eval()
    x = torch.rand(4, 1, 4, 4)
    torch.testing.assert_close(model.innovate(x, coordinate=1, alpha=1.0, sample=False), model.reconstruct(x, level=1, sample=False))
    assert not torch.allclose(model.innovate(x, coordinate=1, alpha=3.0, sample=False), model.reconstruct(x, level=1, sample=False))


def test_traversal_changes_one_coordinate_and_keeps_the_draw():
    model = tiny().eval()
    torch.manual_seed(3)
    images = model.traverse(level=2, coordinate=0, scales=torch.tensor([1.0, 1.0, 3.0]), n=2)  # [3, 2, 16]
    assert images.shape == (3, 2, 16)
    torch.testing.assert_close(images[0], images[1])
    assert not torch.allclose(images[0], images[2])
    with pytest.raises(ValueError, match="coordinate"):
        model.traverse(level=2, coordinate=3, scales=torch.tensor([1.0]))


def test_reconstruction_errors_are_logged_per_level():
    model = tiny()
    dataset = PartialDataset.from_arrays(torch.rand(20, 1, 4, 4))
    metrics = model.validation_metrics(dataset)
    assert set(metrics) == {f"reconstruction_l{l}_{kind}" for l in (1, 2) for kind in ("euclidean", "discriminator")}
    assert all(v > 0 for v in metrics.values())
    assert model.training  # restored after the evaluation


def test_semi_supervised_cost_reads_labelled_rows_only_and_reaches_the_classifier():
    torch.manual_seed(0)
    model = tiny(SemiSupervisedHALI, num_classes=3)
    x = torch.rand(8, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 1, 0, 0, 0, 0])
    labelled = torch.arange(8) < 4
    terms = model.loss(Batch(x={"x": x}, y=y, y_mask=labelled))
    assert "supervised" in terms and terms["supervised"] > 0
    grads = torch.autograd.grad(terms["loss/generator"], [model.classifier.weight], allow_unused=True)
    assert grads[0] is not None and grads[0].abs().sum() > 0
    # Changing the labels of unlabelled rows changes nothing.
    torch.manual_seed(5)
    a = model.loss(Batch(x={"x": x}, y=y, y_mask=labelled))["supervised"]
    torch.manual_seed(5)
    b = model.loss(Batch(x={"x": x}, y=torch.where(labelled, y, 2 - y), y_mask=labelled))["supervised"]
    assert a == b
    log_probs = model.eval().classify(x)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(8))
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\)"):
        model.train().loss(Batch(x={"x": x}, y=torch.full((8,), 3), y_mask=labelled))


def test_semi_supervised_cost_is_the_cross_entropy_of_the_softmax_on_z():
    torch.manual_seed(0)
    model = tiny(SemiSupervisedHALI, num_classes=3, input_noise=0.0).eval()
    x, y = torch.rand(4, 16), torch.tensor([0, 2, 1, 1])
    z_hat = model.encode_chain(x, sample=False)
    expected = F.cross_entropy(model.classifier(torch.cat(z_hat, -1)), y)
    torch.testing.assert_close(model.supervised_cost(Batch(x={"x": x}, y=y, y_mask=torch.ones(4, dtype=torch.bool)), z_hat), expected)


def test_linear_probe_reads_what_the_features_carry():
    """Features that are the label (one-hot, plus noise) probe near 100%; features of pure noise near chance."""
    from pogm.evaluate.probe import linear_probe

    from pogm.models.base import Model

    class Fixed(Model):  # a model that offers encode, and nothing else
        def __init__(self, informative: bool):
            super().__init__(config=None)
            self.informative = informative
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        @property
        def device(self):
            return self.anchor.device

        def encode(self, batch):
            g = torch.Generator().manual_seed(len(batch))
            noise = torch.randn(len(batch), 5, generator=g)
            return (F.one_hot(batch.y, 5).float() * 3 + noise) if self.informative else noise

    g = torch.Generator().manual_seed(0)
    train = PartialDataset.from_arrays(torch.rand(300, 4), torch.randint(5, (300,), generator=g), num_classes=5)
    test = PartialDataset.from_arrays(torch.rand(200, 4), torch.randint(5, (200,), generator=g), num_classes=5)
    good = linear_probe(Fixed(True), train, test)
    bad = linear_probe(Fixed(False), train, test)
    assert good["balanced_accuracy"] > 0.9 and bad["balanced_accuracy"] < 0.4
    assert good["feature_dim"] == 5 and good["test_examples"] == 200
    with pytest.raises(ValueError, match="unknown probe"):
        linear_probe(Fixed(True), train, test, probe="knn")


@pytest.mark.slow
def test_hali_learns_reconstructions_that_carry_their_input(tmp_path):
    """After adversarial training alone, a level-1 reconstruction is nearer its own digit than most
    other test digits are (an encoder that ignored x would sit at the median: 0.5), and level 1
    reconstructs better than level 2 (section 3.2)."""
    import pogm
    from pogm.evaluate.metrics import evaluation_view

    overrides = {
        "train": {"lr": 1e-3, "adam_betas": [0.5, 0.999], "progress": False},
        "model": {"architecture": "mlp", "hidden": [128, 128], "z_dims": [16, 8], "discriminator_hidden": [128], "discriminator_joint_hidden": [128]},
    }
    run = pogm.load_run(pogm.train("hali", data="digits", epochs=40, out=tmp_path / "hali", seed=0, overrides=overrides, progress=False), weights="latest")
    x = evaluation_view(run.data.test).x["x"].reshape(len(run.data.test), -1)
    model = run.model.eval()
    torch.manual_seed(0)
    rank, mean_error = {}, {}
    for level in (1, 2):
        distances = torch.cdist(model.reconstruct_flat(x, level), x)  # [N, N]: reconstruction i to digit j
        own = distances.diag()
        rank[level] = float((distances < own[:, None]).float().mean())  # share of digits nearer than its own
        mean_error[level] = float(own.mean())
    print(f"share of digits nearer than the input: {rank}; mean error: {mean_error}")
    assert rank[1] < 0.42  # chance: 0.5 +- 0.017 over 300 test digits
    assert mean_error[1] < mean_error[2]
