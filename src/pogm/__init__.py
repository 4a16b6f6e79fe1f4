"""pogm: partially observed generative models (PyTorch).

Deep generative models that learn from data that is only partly observed: missing labels,
missing groups, missing pixels, all expressed as observation masks on a `Batch`.
"""

from pogm.data import Batch, PartialDataset, load_source
from pogm.models import list_models, model_entry, register_model
from pogm.runs import Run, build_model, load_run
from pogm.train import train
from pogm.version import __version__

__all__ = ["Batch", "PartialDataset", "load_source", "model_entry", "list_models", "register_model", "train", "load_run", "build_model", "Run"]
