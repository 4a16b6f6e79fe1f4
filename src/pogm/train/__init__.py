"""Training: the Trainer, checkpoints and runs."""

from pogm.train.run import Run, load_run, train
from pogm.train.trainer import TrainConfig, Trainer

__all__ = ["Trainer", "TrainConfig", "train", "load_run", "Run"]
