"""Learning that a broken model cannot fake: M2 on the digits with 10 labels per class must beat
the same classifier network trained on the 100 labelled digits alone."""

from __future__ import annotations

import pytest
import torch

import pogm
from pogm.data.dataset import PartialDataset
from pogm.demo import DEMO_SETTINGS
from pogm.evaluate.baselines import error_of, labels_only_classifier
from pogm.evaluate.metrics import classification_error


def held_out(run) -> PartialDataset:
    """Validation and test digits together (600), for a less noisy comparison."""
    valid, test = run.data.valid, run.data.test
    return PartialDataset.from_arrays(
        torch.cat([valid.x["x"], test.x["x"]]).numpy(), torch.cat([valid.y, test.y]).numpy(), num_classes=10, binarize=test.binarize
    )


@pytest.mark.slow
def test_m2_on_digits_beats_a_classifier_trained_on_the_labels_alone(tmp_path):
    settings = {k: dict(v) for k, v in DEMO_SETTINGS.items()}
    run_dir = pogm.train("m2", data="digits", labels=10, epochs=60, out=tmp_path / "m2", seed=1, overrides=settings, progress=False)
    run = pogm.load_run(run_dir)
    data = held_out(run)
    m2_error = classification_error(run.model, data)
    baseline, _ = labels_only_classifier(run.data.train, run.labelled_index, run.data.valid, hidden=tuple(run.model.config.hidden), seed=1)
    baseline_error = error_of(baseline, data)
    print(f"M2 error {m2_error:.3f}, labels-only error {baseline_error:.3f}")
    assert baseline_error < 0.2  # the baseline is a real classifier, not a strawman
    assert m2_error <= baseline_error - 0.01  # unlabelled digits help by at least a point
