"""Training: the Trainer and `train`, which trains a new run or resumes one exactly."""

from pogm.train.launch import train
from pogm.train.trainer import TrainConfig, Trainer, TrainingInterrupted

__all__ = ["Trainer", "TrainConfig", "TrainingInterrupted", "train"]
