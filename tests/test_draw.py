"""DRAW: the attention filterbank as a pure function, the KL's constants, the bound against its
importance-weighted estimate, masks, conditional sampling, and learning on the digits."""

from __future__ import annotations

import math

import pytest
import torch

from pogm.data.batch import Batch
from pogm.models.base import config_from_dict
from pogm.models.vae_gan.draw import DRAW, ConditionalDRAW
from pogm.models.vae_gan.drawgan import DRAWGAN
from pogm.nn.attention import AttentionRead, AttentionWindow, filterbank, read_window, window_parameters, write_window

SHARP = -12.0  # log sigma^2 of filters narrow enough to pick single pixels


def window(centre_x: float, centre_y: float, stride: float, size: int, height: int, width: int, intensity: float = 1.0, log_variance: float = SHARP) -> AttentionWindow:
    t = lambda v: torch.tensor([float(v)])  # noqa: E731  one window, [1]
    return AttentionWindow(
        filter_x=filterbank(t(centre_x), t(stride), t(log_variance), size, width),
        filter_y=filterbank(t(centre_y), t(stride), t(log_variance), size, height),
        intensity=t(intensity), centre_x=t(centre_x), centre_y=t(centre_y), stride=t(stride),
    )


def test_filters_are_normalised_even_far_outside_the_image():
    F = filterbank(torch.tensor([3.0, -200.0, 500.0]), torch.tensor([1.0, 0.5, 4.0]), torch.tensor([0.0, -3.0, 2.0]), 4, 9)  # [3, 4, 9]
    assert F.shape == (3, 4, 9)
    assert torch.isfinite(F).all()
    torch.testing.assert_close(F.sum(-1), torch.ones(3, 4))


def test_read_with_unit_stride_reproduces_the_image_patch():
    image = torch.rand(2, 3, 8, 10)  # [B, C, H, W]
    # 1-based centre (5, 4), N = 3, stride 1: columns 4..6 and rows 3..5, i.e. 0-based 3:6 and 2:5.
    w = window(centre_x=5, centre_y=4, stride=1, size=3, height=8, width=10)
    w = AttentionWindow(*(t.expand(2, *t.shape[1:]) for t in (w.filter_x, w.filter_y, w.intensity, w.centre_x, w.centre_y, w.stride)))
    torch.testing.assert_close(read_window(image, w), image[:, :, 2:5, 3:6], atol=1e-5, rtol=0)


def test_read_with_stride_two_skips_every_other_pixel():
    image = torch.rand(1, 1, 9, 9)
    w = window(centre_x=5, centre_y=5, stride=2, size=3, height=9, width=9)
    torch.testing.assert_close(read_window(image, w), image[:, :, 2:7:2, 2:7:2], atol=1e-5, rtol=0)


def test_write_of_a_read_is_the_identity_on_the_window_and_zero_elsewhere():
    image = torch.rand(1, 1, 12, 12)
    w = window(centre_x=6.5, centre_y=7.5, stride=1, size=4, height=12, width=12, intensity=2.5)  # gamma cancels
    written = write_window(read_window(image, w), w)
    inside = torch.zeros_like(image, dtype=torch.bool)
    inside[..., 5:9, 4:8] = True  # rows 6..9 and columns 5..8, 1-based
    torch.testing.assert_close(written[inside], image[inside], atol=1e-5, rtol=0)
    assert written[~inside].abs().max() < 1e-5


def test_intensity_scales_the_glimpse():
    image = torch.rand(1, 1, 6, 6)
    dim = window(3.5, 3.5, 1, 2, 6, 6, intensity=1.0)
    bright = window(3.5, 3.5, 1, 2, 6, 6, intensity=3.0)
    torch.testing.assert_close(read_window(image, bright), 3.0 * read_window(image, dim))


def test_window_parameters_follow_equations_21_to_24():
    raw = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [-1.0, 1.0, math.log(2.0), math.log(0.5), math.log(4.0)]])
    w = window_parameters(raw, height=20, width=28, size=5)
    torch.testing.assert_close(w.centre_x, torch.tensor([14.5, 0.0]))  # (A + 1)/2 (g~ + 1)
    torch.testing.assert_close(w.centre_y, torch.tensor([10.5, 21.0]))
    torch.testing.assert_close(w.stride, torch.tensor([27 / 4, 27 / 8]))  # (max(A, B) - 1)/(N - 1) exp(log delta~)
    torch.testing.assert_close(w.intensity, torch.tensor([1.0, 4.0]))
    with pytest.raises(ValueError, match="5 parameters"):
        window_parameters(torch.zeros(1, 4), 20, 28, 5)


def test_a_full_size_window_reads_the_whole_image():
    """With N = A and g~ = log delta~ = 0 the window covers the image at stride 1: the read head
    (its linear layer given those outputs) returns the image and the error image as they are."""
    read = AttentionRead(hidden_dim=3, image_shape=(1, 7, 7), size=7)
    with torch.no_grad():
        read.window.weight.zero_()
        read.window.bias.copy_(torch.tensor([0.0, 0.0, SHARP, 0.0, 0.0]))
    x, error = torch.rand(4, 49), torch.rand(4, 49)
    torch.testing.assert_close(read(x, error, torch.randn(4, 3)), torch.cat([x, error], -1), atol=1e-5, rtol=0)


def tiny(cls=DRAW, **overrides):
    values = {"x_dim": 16, "image_shape": (1, 4, 4), "steps": 3, "z_dim": 2, "lstm_units": 8, "read_size": 2, "write_size": 3, **overrides}
    return cls(config_from_dict(cls.Config, values))


@pytest.mark.parametrize("attention", [True, False])
def test_kl_has_the_right_constants(attention):
    """L^z (analytic, eq. 11) equals E_Q[sum_t log Q(z_t | ...) - log N(z_t; 0, I)] estimated by
    Monte Carlo over many sequences: a dropped -T/2 or a sigma for a variance would show."""
    torch.manual_seed(0)
    model = tiny(attention=attention)
    x = torch.bernoulli(torch.full((1, 16), 0.4)).expand(20000, 16)
    with torch.no_grad():
        unrolled = model.unroll(x, None, None)
    monte_carlo = -unrolled.log_prior_minus_q
    error = monte_carlo.std() / math.sqrt(len(x))
    assert abs(unrolled.kl.mean() - monte_carlo.mean()) < 4 * error
    assert unrolled.kl.mean() > 0.01  # the encoder is not the prior: the check has something to measure


def test_the_bound_is_below_its_importance_weighted_estimate():
    torch.manual_seed(1)
    model = tiny().eval()
    x = torch.bernoulli(torch.full((5, 1, 4, 4), 0.3))
    batch = Batch(x={"x": x})
    with torch.no_grad():
        log_w = model.log_weights(batch, 4000)  # [k, B]
        negative_bound, *_ = model.bound_terms(Batch(x={"x": x.repeat(400, 1, 1, 1)}))
    elbo = -negative_bound.reshape(400, 5).mean(0)  # [B], from the training loss's own path
    # log_weights averages to the bound (same quantity, two code paths) ...
    error = log_w.std(0) / math.sqrt(4000) + (-negative_bound).reshape(400, 5).std(0) / math.sqrt(400)
    assert ((log_w.mean(0) - elbo).abs() < 4 * error).all()
    # ... and the importance-weighted estimate is above it, more so with more samples.
    iw_10 = (log_w.reshape(400, 10, 5).logsumexp(1) - math.log(10)).mean(0)  # E[bound with k = 10], over 400 draws
    iw_4000 = log_w.logsumexp(0) - math.log(4000)
    assert (iw_10 > elbo + 0.02).all()
    assert (iw_4000 > iw_10).all()
    torch.testing.assert_close(model.log_likelihood(batch, k=4000, chunk_size=1000).shape, torch.Size([5]))


def test_missing_pixels_carry_no_information_and_no_gradient():
    model = tiny()
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.5))
    mask = torch.rand(6, 1, 4, 4) > 0.3
    losses = []
    for fill in (0.0, 1.0):
        x_in = torch.where(mask, x, torch.full_like(x, fill)).requires_grad_(True)
        torch.manual_seed(3)
        loss = model.loss(Batch(x={"x": x_in}, x_mask={"x": mask}))["loss"]
        loss.backward()
        assert (x_in.grad[~mask] == 0).all()
        losses.append(loss.item())
    assert losses[0] == losses[1]


def test_conditional_draw_samples_the_class_it_is_given():
    torch.manual_seed(0)
    model = tiny(ConditionalDRAW, num_classes=3).eval()
    torch.manual_seed(5)
    a = model.sample(4, 0)
    torch.manual_seed(5)
    b = model.sample(4, torch.tensor([2, 2, 2, 2]))
    assert a.shape == (4, 16) and not torch.allclose(a, b)
    assert model.canvas_sequence(2, 1).shape == (3, 2, 16)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\)"):
        model.sample(2, 3)
    with pytest.raises(ValueError, match="unconditional"):
        tiny().sample(2, 1)


def test_the_canvas_sequence_ends_in_the_sample():
    model = tiny().eval()
    torch.manual_seed(2)
    sequence = model.canvas_sequence(3)  # [T, n, D]
    torch.manual_seed(2)
    torch.testing.assert_close(sequence[-1], model.sample(3))


def test_draw_gan_keeps_the_gan_off_the_bound_when_its_weight_is_zero():
    """With gan_weight = 0 the VAE group's loss is DRAW's loss exactly (same seed, same draws)."""
    torch.manual_seed(0)
    gan = tiny(DRAWGAN, gan_weight=0.0, discriminator_hidden=(8,))
    plain = tiny()
    plain.load_state_dict({k: v for k, v in gan.state_dict().items() if not k.startswith("discriminator.")})
    batch = Batch(x={"x": torch.bernoulli(torch.full((5, 1, 4, 4), 0.5))})
    torch.manual_seed(4)
    gan_terms = gan.loss(batch)
    torch.manual_seed(4)
    plain_terms = plain.loss(batch)
    torch.testing.assert_close(gan_terms["loss/vae"], plain_terms["loss"])
    assert gan_terms["loss/discriminator"] > 0


@pytest.mark.slow
def test_conditional_draw_learns_to_draw_the_class_it_is_asked_for(tmp_path):
    """Trained on the labelled digits, cdraw's samples of class y must be recognised as y by a
    classifier of real digits; a model that ignored its label would score 10%."""
    from sklearn.linear_model import LogisticRegression

    import pogm

    overrides = {"model": {"steps": 8, "lstm_units": 64, "z_dim": 8, "read_size": 3, "write_size": 3}, "train": {"lr": 3e-3, "progress": False}}
    run_dir = pogm.train("cdraw", data="digits", epochs=25, out=tmp_path / "cdraw", seed=0, overrides=overrides, progress=False).dir
    run = pogm.load_run(run_dir)
    train = run.data.train
    classifier = LogisticRegression(max_iter=2000).fit(train.x["x"].flatten(1).numpy(), train.y.numpy())
    torch.manual_seed(0)
    labels = torch.arange(10).repeat_interleave(20)
    samples = run.model.sample(len(labels), labels)  # [200, 64]
    accuracy = float((torch.as_tensor(classifier.predict(samples.numpy())) == labels).float().mean())
    print(f"cdraw samples recognised as their class: {accuracy:.2%}")
    assert accuracy > 0.7
