"""Training: the Trainer, checkpoints and runs."""

from pogm.train.run import Run, build_model, load_run, train
from pogm.train.trainer import TrainConfig, Trainer, TrainingInterrupted

__all__ = ["Trainer", "TrainConfig", "TrainingInterrupted", "train", "load_run", "build_model", "Run"]
