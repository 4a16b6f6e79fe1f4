"""Contract: every registered model builds, gives a finite loss, saves and loads to identical
outputs, is deterministic under a seed, and offers what the registry says it offers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.models import model_entry, list_models
from pogm.models.base import config_from_dict
from pogm.checkpoint import load_weights, save_weights

X_DIM, K, H_DIM = 16, 3, 2  # images of 1 x 4 x 4; 3 classes or 2-D continuous labels
IMAGE = (1, 4, 4)
GROUPS = {"a": 5, "b": 3, "c": 8}  # multi-group models (factVAE and its baselines) get three groups
SMALL = {
    "hidden": (16,), "z_dim": 3, "a_dim": 2, "top_hidden": (8,), "m1_hidden": (16,), "m1_z_dim": 4, "m1_steps": 2,
    "channels": (4,), "fc_units": 8, "z_samples": 2, "h_samples": 2, "steps": 3, "lstm_units": 8, "discriminator_hidden": (8,),
}


def labels_for(name: str, g: torch.Generator) -> torch.Tensor:
    """Class labels [12] or continuous labels [12, H_DIM], as the model reads them."""
    if model_entry(name).cls.label_kind == "continuous":
        return torch.rand(12, H_DIM, generator=g)
    return torch.randint(K, (12,), generator=g)


def multi_group(name: str) -> bool:
    return model_entry(name).cls.multi_group


def build(name: str, seed: int = 0):
    cls = model_entry(name).cls
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    if multi_group(name):
        train = PartialDataset.from_arrays({g: torch.rand(12, d) for g, d in GROUPS.items()})
    else:
        train = PartialDataset.from_arrays(torch.rand(12, *IMAGE), labels_for(name, torch.Generator().manual_seed(9)), num_classes=None if cls.label_kind == "continuous" else K)
    values = cls.data_fields(X_DIM, K, 60, 6, train)
    values.update({k: v for k, v in SMALL.items() if k in fields})
    torch.manual_seed(seed)
    return cls(config_from_dict(cls.Config, values))


def make_batch(name: str, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    if multi_group(name):
        # Rows mix patterns: each group missing in some rows, row 0 fully observed, and group "c"
        # also loses single entries.
        x = {k: torch.rand(12, d, generator=g) for k, d in GROUPS.items()}
        masks = {k: ((torch.rand(12, 1, generator=g) > 0.3) | (torch.arange(12) == 0)[:, None]) & (torch.arange(12) != 1 + i)[:, None] for i, k in enumerate(GROUPS)}
        masks["c"] = masks["c"] & (torch.rand(12, GROUPS["c"], generator=g) > 0.2) | (torch.arange(12) == 0)[:, None]
        return Batch(x={k: torch.where(masks[k], v, 0.0) for k, v in x.items()}, x_mask=masks)
    x = torch.bernoulli(torch.full((12, *IMAGE), 0.4), generator=g)
    mask = torch.rand(12, *IMAGE, generator=g) > 0.2
    y = labels_for(name, g)
    y_mask = torch.arange(12) < 6
    y = torch.where(y_mask.view(-1, *([1] * (y.dim() - 1))), y, torch.zeros((), dtype=y.dtype))
    return Batch(x={"x": torch.where(mask, x, 0.0)}, x_mask={"x": mask}, y=y, y_mask=y_mask)


def phases(model) -> list[int]:
    """Optimizer steps at which the loss differs in kind (M1+M2 trains M1 first, then M2)."""
    return [0, model.config.m1_steps] if hasattr(model.config, "m1_steps") else [0]


@pytest.mark.parametrize("name", list_models())
def test_builds_and_gives_a_finite_loss_with_finite_gradients(name):
    model = build(name)
    for step in phases(model):
        model.zero_grad()
        terms = model.loss(make_batch(name), kl_weight=0.5, step=step)
        assert terms["loss"].dim() == 0 and torch.isfinite(terms["loss"])
        terms["loss"].backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads, "the loss reaches no parameter"
        assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_save_and_load_give_identical_outputs(name, tmp_path):
    model = build(name, seed=0)
    save_weights(tmp_path / "m.safetensors", model)
    other = build(name, seed=1)  # different initial weights
    load_weights(tmp_path / "m.safetensors", other)
    for step in phases(model):
        torch.manual_seed(3)
        a = model.loss(make_batch(name), step=step)["loss"]
        torch.manual_seed(3)
        b = other.loss(make_batch(name), step=step)["loss"]
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", list_models())
def test_deterministic_under_a_seed(name):
    losses = []
    for _ in range(2):
        model = build(name, seed=5)
        torch.manual_seed(7)
        losses.append(model.loss(make_batch(name))["loss"])
    assert torch.equal(losses[0], losses[1])


@pytest.mark.parametrize("name", list_models())
def test_unknown_config_keys_are_an_error(name):
    cls = model_entry(name).cls
    with pytest.raises(ValueError, match="unknown config keys"):
        config_from_dict(cls.Config, {"not_a_field": 1})


@pytest.mark.parametrize("name", list_models())
def test_offered_methods_work_with_the_right_shapes(name):
    model = build(name)
    model.eval()
    batch = make_batch(name)
    if not model_entry(name).cls.uses_unlabelled:
        batch.y_mask[:] = True  # the F-VAE needs h to encode an image: every row labelled
    offers = model_entry(name).offers
    assert offers, f"{name} offers nothing beyond loss"
    if "classify" in offers:
        logits = model.classify(batch)
        assert logits.shape == (12, K) and torch.isfinite(logits).all()
    if "log_likelihood" in offers:
        ll = model.log_likelihood(batch, k=7, chunk_size=3)
        assert ll.shape == (12,) and torch.isfinite(ll).all()
    if "encode" in offers:
        assert model.encode(batch).shape[0] == 12
    if multi_group(name):
        check_multi_group_methods(model, batch, offers)
        return
    if "sample" in offers:
        assert model.sample(5).shape == (5, X_DIM)
    if "sample_joint" in offers:
        pairs = model.sample_joint(5)
        assert pairs["d"].shape == (5, *IMAGE) and pairs["h"].shape == (5, H_DIM)
    if "predict_labels" in offers:
        assert model.predict_labels(batch).shape == (12, H_DIM)
    if "interpolate" in offers:
        path = model.interpolate(batch.select(torch.arange(2)), batch.select(torch.arange(2, 4)), steps=4)
        assert path["d"].shape == (2, 4, *IMAGE) and path["h"].shape == (2, 4, H_DIM)
        if hasattr(model.config, "num_classes"):
            assert model.sample(4, torch.tensor([0, 1, 2, 0])).shape == (4, X_DIM)
    if "reconstruct" in offers:
        assert model.reconstruct(batch).shape == batch.x["x"].shape
    if "impute" in offers:
        filled = model.impute(batch)
        mask = batch.x_mask["x"]
        assert torch.equal(filled[mask], batch.x["x"][mask])  # observed entries kept bit for bit
        assert not torch.equal(filled[~mask], batch.x["x"][~mask])  # unobserved ones filled in
        complete = Batch(x={"x": batch.x["x"]}, y=batch.y, y_mask=batch.y_mask)  # nothing missing: impute returns the data unchanged
        assert torch.equal(model.impute(complete), batch.x["x"])


def check_multi_group_methods(model, batch: Batch, offers: list[str]) -> None:
    """Multi-group models take and give dicts of groups."""
    if "sample" in offers:
        assert {k: tuple(v.shape) for k, v in model.sample(5).items()} == {k: (5, d) for k, d in GROUPS.items()}
    if "reconstruct" in offers:
        assert {k: v.shape for k, v in model.reconstruct(batch).items()} == {k: v.shape for k, v in batch.x.items()}
    if "impute" in offers:
        filled = model.impute(batch)
        for k, mask in batch.x_mask.items():
            mask = mask.expand_as(batch.x[k])
            assert torch.equal(filled[k][mask], batch.x[k][mask])  # observed entries kept bit for bit
            assert not torch.equal(filled[k][~mask], batch.x[k][~mask])  # unobserved ones filled in
    if "sparsity_pattern" in offers:
        norms = model.sparsity_pattern()
        assert norms.shape == (len(GROUPS), model.config.z_dim) and (norms >= 0).all()


@pytest.mark.parametrize("name", [n for n in list_models() if model_entry(n).cls.label_kind == "continuous"])
def test_class_labels_given_to_a_model_of_continuous_labels_are_a_clear_error(name):
    model = build(name)
    batch = make_batch(name)
    batch.y = torch.zeros(12, dtype=torch.long)
    with pytest.raises(ValueError, match="continuous labels h of shape"):
        model.loss(batch)
    batch.y = torch.zeros(12, H_DIM + 1)
    with pytest.raises(ValueError, match=rf"\[B, {H_DIM}\]"):
        model.loss(batch)


@pytest.mark.parametrize("name", [n for n in list_models() if model_entry(n).cls.uses_labels and model_entry(n).cls.label_kind == "class"])
def test_labels_out_of_range_are_a_clear_error(name):
    model = build(name)
    batch = make_batch(name)
    batch.y[0] = K + 4
    with pytest.raises(ValueError, match="labels must be integers"):
        model.loss(batch, step=max(phases(model)))
