"""Objectives that models compose: bounds, semi-supervised terms."""

from pogm.objectives.bounds import chunked_importance_weighted_bound, elbo, importance_weighted_bound
from pogm.objectives.group_lasso import column_norms, group_lasso_penalty, group_soft_threshold
from pogm.objectives.semi_supervised import (
    WEIGHTINGS,
    ObjectiveWeights,
    categorical_kl,
    classification_loss,
    default_alpha,
    objective_weights,
    rampup,
    semi_supervised_loss,
    unlabelled_bound,
    virtual_adversarial_cost,
)

__all__ = [
    "elbo",
    "importance_weighted_bound",
    "chunked_importance_weighted_bound",
    "unlabelled_bound",
    "classification_loss",
    "default_alpha",
    "objective_weights",
    "ObjectiveWeights",
    "WEIGHTINGS",
    "column_norms",
    "group_lasso_penalty",
    "group_soft_threshold",
    "semi_supervised_loss",
    "rampup",
    "categorical_kl",
    "virtual_adversarial_cost",
]
