"""The two weightings of the semi-supervised objective J^alpha: Kingma et al.'s (2014) eq. 9 summed
over the data set ("data-set") and Maaløe et al.'s (2016) per-minibatch means ("per-batch")."""

from __future__ import annotations

import pytest
import torch

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian
from pogm.models.semi_supervised.adgm import ADGM, ADGMConfig, SDGM
from pogm.models.semi_supervised.m2 import M2, M2Config
from pogm.objectives import classification_loss, objective_weights, unlabelled_bound

K, D = 3, 6


def fixed_z(monkeypatch):
    """One fixed latent value per (class, example), so the loss is a deterministic function."""
    monkeypatch.setattr(DiagonalGaussian, "rsample", lambda self, n=None: (self.mean if n is None else self.mean.expand(n, *self.mean.shape)) + 0.1)


def small_data_set(n_l: int = 4, n_u: int = 7):
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((n_l + n_u, D), 0.5))
    y = torch.arange(n_l + n_u) % K
    labelled = torch.arange(n_l + n_u) < n_l
    return x, y, labelled


def test_data_set_weighting_is_eq_9_summed_over_the_data_set_divided_by_n(monkeypatch):
    fixed_z(monkeypatch)
    x, y, labelled = small_data_set()
    n_l, n_u = int(labelled.sum()), int((~labelled).sum())
    model = M2(M2Config(x_dim=D, num_classes=K, z_dim=2, hidden=(5,), weighting="data-set", num_labelled=n_l, num_unlabelled=n_u))
    # eq. 9 by hand over the whole data set: sum_l L + sum_u U + alpha E_l[-log q(y|x)], alpha = 0.1 N
    bound_l = model.labelled_bound(x[labelled], None, model.one_hot(y[labelled]))  # [N_l]
    log_q = torch.log_softmax(model.q_y_x(x[~labelled]), -1)  # [N_u, K]
    bound_u = unlabelled_bound(log_q, model.labelled_bound(x[~labelled], None, model.every_class).T)  # [N_u]
    n = n_l + n_u
    ce = classification_loss(model.q_y_x(x[labelled]), y[labelled]).mean()
    eq_9 = -bound_l.sum() - bound_u.sum() + 0.1 * n * ce
    batch = Batch(x={"x": x}, y=y, y_mask=labelled)
    torch.testing.assert_close(model.loss(batch)["loss"], eq_9 / n)


def test_per_batch_weighting_weighs_the_means_equally_with_alpha_01_n_over_n_l(monkeypatch):
    fixed_z(monkeypatch)
    x, y, labelled = small_data_set()
    model = M2(M2Config(x_dim=D, num_classes=K, z_dim=2, hidden=(5,), weighting="per-batch", num_labelled=100, num_unlabelled=50000))
    terms = model.loss(Batch(x={"x": x}, y=y, y_mask=labelled))
    expected = -terms["bound_labelled"] - terms["bound_unlabelled"] + 0.1 * 50000 / 100 * terms["classification"]
    torch.testing.assert_close(terms["loss"], expected)


def test_the_weightings_differ_by_n_over_n_l_in_the_labelled_part():
    per_batch = objective_weights("per-batch", 100, 50000)
    data_set = objective_weights("data-set", 100, 50000)
    # relative to U, per-batch weighs the classifier ~N / N_l (here 50000^2 / (100 * 50100) = 499)
    # times more than eq. 9
    ratio = (per_batch.classification / per_batch.unlabelled) / (data_set.classification / data_set.unlabelled)
    assert ratio == pytest.approx(50000**2 / (100 * 50100), rel=1e-9)
    assert data_set.labelled == pytest.approx(100 / 50100) and data_set.unlabelled == pytest.approx(50000 / 50100)
    assert objective_weights("per-batch", 100, 50000, alpha=7.0).classification == 7.0


def test_each_paper_s_model_defaults_to_its_paper_s_weighting():
    assert M2Config().weighting == "data-set"  # Kingma et al. 2014, eq. 9
    assert ADGMConfig().weighting == "per-batch"  # Maaløe et al. 2016's code
    assert SDGM.Config is ADGMConfig


def test_an_unknown_weighting_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown weighting 'per-example'.*data-set.*per-batch"):
        ADGM(ADGMConfig(x_dim=D, num_classes=K, a_dim=2, z_dim=2, hidden=(5,), weighting="per-example")).objective_weights
