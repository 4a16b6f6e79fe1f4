"""pogm: partially observed generative models (PyTorch).

Deep generative models that learn from data that is only partly observed: missing labels,
missing groups, missing pixels, all expressed as observation masks on a `Batch`.
"""

__version__ = "0.1.0"

from pogm.data import Batch, PartialDataset, load_source  # noqa: E402
from pogm.models import get_model, list_models, register_model  # noqa: E402
from pogm.train import Run, build_model, load_run, train  # noqa: E402

__all__ = ["Batch", "PartialDataset", "load_source", "get_model", "list_models", "register_model", "train", "load_run", "build_model", "Run"]
