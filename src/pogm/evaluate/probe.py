"""Linear probes: how much of the labels a model's features carry (HALI, section 7.1).

A linear classifier (logistic regression, or a linear SVM as the paper uses) is fitted on the
encoder's features of one split and scored on another by accuracy and balanced accuracy (the mean
of the per-class recalls, the paper's measure for CelebA's unbalanced attributes). The model is
never trained here; only the probe sees the labels.
"""

from __future__ import annotations

import numpy as np
import torch

from pogm.data.dataset import PartialDataset
from pogm.data.streams import iterate_batches
from pogm.data.dataset import evaluation_view

PROBES = ("logistic", "svm")


@torch.no_grad()
def features(model: torch.nn.Module, dataset: PartialDataset, batch_size: int = 1000, limit: int | None = None) -> np.ndarray:
    """``model.encode`` of every example (or the first ``limit``) as ``[N, F]``, in evaluation mode."""
    if not model.offers("encode"):
        raise ValueError(f"{type(model).__name__} has no encoder (encode); a linear probe needs features")
    model.eval()
    view = evaluation_view(dataset)
    if limit is not None and limit < len(view):
        view = view.subset(torch.arange(limit))
    return torch.cat([model.encode(batch).reshape(len(batch), -1).cpu() for batch in iterate_batches(view, batch_size, model.device)]).numpy()


def linear_probe(
    model: torch.nn.Module,
    train: PartialDataset,
    test: PartialDataset,
    probe: str = "logistic",
    train_limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Fit a linear classifier on the features of ``train`` with its labels, score it on ``test``:
    ``{"accuracy", "balanced_accuracy", "train_examples", "test_examples", "feature_dim"}``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; choose one of {list(PROBES)}")
    for name, split in (("train", train), ("test", test)):
        if split.y is None or split.num_classes is None:
            raise ValueError(f"a linear probe needs class labels on the {name} split; it has none")
    features_train = features(model, train, limit=train_limit)
    features_test = features(model, test, limit=test_limit)
    labels_train = train.y[: len(features_train)].numpy()
    labels_test = test.y[: len(features_test)].numpy()
    classifier = LogisticRegression(max_iter=2000, random_state=seed) if probe == "logistic" else LinearSVC(random_state=seed, max_iter=5000)
    fitted = make_pipeline(StandardScaler(), classifier).fit(features_train, labels_train)
    predicted = fitted.predict(features_test)
    return {
        "accuracy": float((predicted == labels_test).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(labels_test, predicted)),
        "train_examples": len(features_train),
        "test_examples": len(features_test),
        "feature_dim": int(features_train.shape[1]),
    }


__all__ = ["PROBES", "features", "linear_probe"]
