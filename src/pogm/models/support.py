"""Which data values a model can fit, and the check that refuses other data before training.

A Bernoulli likelihood on pixel values 0..255 gives a NaN loss at step 0; a GAN whose generator
draws sigmoid images in [0, 1] can never match real images outside it. `check_data_support`
turns both into one clear error before the first step, naming the range found, the range needed
and the fix. A model says what it needs with `Model.data_support` (`pogm.models.base`, through
`model_support`): [0, 1] when its class sets ``sigmoid_images`` (vaegan, ali / hali, the DRAW
family), else the support of the likelihood its config names in ``likelihood_field``
(``likelihood``; ``m1_likelihood`` for M1+M2), unbounded when it names none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pogm.data.sources import DataSplits
from pogm.likelihoods import support


@dataclass(frozen=True)
class DataSupport:
    """The values a model can fit: ``[low, high]``, what imposes it (``needs``, e.g. "the bernoulli
    likelihood") and how to lift it besides scaling the data (``fix``, e.g. "choose --set
    likelihood=gaussian"; empty when the model has no other choice)."""

    low: float = -math.inf
    high: float = math.inf
    needs: str = ""
    fix: str = ""

    @property
    def bounded(self) -> bool:
        """Whether some real value lies outside ``[low, high]``."""
        return self.low > -math.inf or self.high < math.inf


def model_support(model: Any) -> DataSupport:
    """What `Model.data_support` returns by default: `sigmoid_image_support` for models whose
    class sets ``sigmoid_images``, else `likelihood_support`."""
    return sigmoid_image_support(model) if model.sigmoid_images else likelihood_support(model)


def likelihood_support(model: Any) -> DataSupport:
    """The support of the likelihood that the model's config names in the field
    ``model.likelihood_field`` (`pogm.likelihoods.support`); unbounded when it names none."""
    field = model.likelihood_field
    name = getattr(model.config, field, None)  # a config field (None: the model names no likelihood)
    if not isinstance(name, str):
        return DataSupport()
    low, high = support(name)
    return DataSupport(low, high, f"the {name} likelihood", f"choose --set {field}=gaussian")


def sigmoid_image_support(model: Any) -> DataSupport:
    """The support of models whose images are sigmoids (GAN generators, DRAW's canvas): real
    images must lie in [0, 1] too, else nothing the model draws can match them."""
    return DataSupport(0.0, 1.0, f"{type(model).registry_name}, whose images are sigmoids,")


def check_data_support(model: Any, data: Any, where: str | None = None) -> None:
    """Refuse data that ``model`` cannot fit (`Model.data_support`), before any training step.

    ``data`` is `DataSplits` (its train, valid and test parts are checked) or one dataset; every
    group of x is checked. Only observed entries count (``x_mask`` True; unobserved entries hold
    0). In-memory datasets are checked exactly; a memmap store is judged without reading it
    wholesale (`pogm.data.memmap.MemmapDataset.observed_range`: uint8 and bool stores from their
    dtype, others from a bounded sample of rows). ``where`` names the data in the message
    (default: each dataset's name).

    Raises:
        ValueError: one line naming the group, the range found, the range needed and the fix.
    """
    needed = model.data_support()
    if not needed.bounded:
        return
    parts = [d for d in (data.train, data.valid, data.test) if d is not None] if isinstance(data, DataSplits) else [data]
    for dataset in parts:
        for group in dataset.groups:
            found = dataset.observed_range(group)
            if found is None or (needed.low <= found[0] and found[1] <= needed.high):
                continue
            fix = "scale the data (uint8 images are scaled by /255 automatically)" + (f", or {needed.fix}" if needed.fix else "")
            raise ValueError(
                f"{group} of {where or dataset.name} holds values in [{found[0]:g}, {found[1]:g}] but {needed.needs} "
                f"needs values in [{needed.low:g}, {needed.high:g}]: {fix}"
            )


__all__ = ["DataSupport", "check_data_support", "likelihood_support", "model_support", "sigmoid_image_support"]
