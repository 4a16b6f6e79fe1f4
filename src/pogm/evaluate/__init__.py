"""Metrics and figures."""

from pogm.evaluate.metrics import classification_error, mean_elbo, mean_log_likelihood, task_errors, task_loss

__all__ = ["classification_error", "mean_elbo", "mean_log_likelihood", "task_errors", "task_loss"]
