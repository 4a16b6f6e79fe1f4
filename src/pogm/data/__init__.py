"""Data: sources -> `PartialDataset` -> label splits -> minibatch streams of `Batch`es.

Observation masks are data: every tensor group comes with a bool mask (True = observed) and
labels with ``y_mask`` (True = labelled), so semi-supervised learning, missing groups and
missing pixels are one mechanism.
"""

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits, list_sources, load_source, register_source
from pogm.data.splits import balanced_label_split, load_split, save_split
from pogm.data.streams import SemiSupervisedStream, iterate_batches

__all__ = [
    "Batch",
    "DataSplits",
    "PartialDataset",
    "SemiSupervisedStream",
    "balanced_label_split",
    "iterate_batches",
    "list_sources",
    "load_source",
    "load_split",
    "register_source",
    "save_split",
]
