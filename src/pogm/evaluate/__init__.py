"""Metrics and figures."""

from pogm.evaluate.metrics import (
    ErrorRate,
    TaskLoss,
    classification_error,
    classification_error_rate,
    count_errors,
    mean_elbo,
    mean_log_likelihood,
    task_errors,
    task_loss,
    task_loss_rate,
)

__all__ = [
    "ErrorRate", "TaskLoss", "classification_error", "classification_error_rate", "count_errors",
    "mean_elbo", "mean_log_likelihood", "task_errors", "task_loss", "task_loss_rate",
]
