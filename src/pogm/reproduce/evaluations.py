"""What a paper table reads off a trained run: each function takes a run (a directory or a loaded
`pogm.train.Run`) and returns a dict of numbers. `pogm reproduce` and the benchmark scripts both
use them; every one seeds torch, so a run evaluates to the same numbers every time.

A table's `pogm.tables.RunSpec` names its evaluation (``evaluate="likelihoods"``, with
``evaluate_options``); `EVALUATIONS` maps the names to the functions and `resolve_evaluation`
gives the function a run is evaluated with.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pogm.tables import RunSpec


def _loaded(run: Any, weights: str = "best"):
    """``run`` itself if it is a loaded run, else the run directory ``run`` loaded."""
    from pogm.runs import load_run

    return load_run(run, weights=weights) if isinstance(run, (str, Path)) else run


def selected_errors(run: Any) -> dict[str, Any]:
    """Test error of the evaluation with the lowest validation error (the test error is only
    reported, never used for the selection), read from the run's ``metrics.jsonl``."""
    from pogm.reproduce.runs import selected_record
    from pogm.checkpoint import read_metrics

    best = selected_record(read_metrics(Path(os.fspath(run))))
    return {"test_error": best["test_error"], "valid_error": best["valid_error"], "selected_step": best["step"]}


def likelihoods(run: Any, iw_samples: int = 5000, test_examples: int | None = 1000, batch_size: int = 20, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Test ELBO and importance-weighted log p(x) with ``iw_samples`` samples (Burda et al. 2015)
    on the first ``test_examples`` test images (best validation weights)."""
    import torch

    from pogm.evaluate.metrics import mean_elbo, mean_log_likelihood

    loaded = _loaded(run)
    test = loaded.data.test
    torch.manual_seed(seed)
    start = time.time()
    elbo = mean_elbo(loaded.model, test, limit=test_examples)
    log_likelihood = mean_log_likelihood(loaded.model, test, k=iw_samples, batch_size=batch_size, limit=test_examples, progress=progress)
    return {
        "test_examples": min(len(test), test_examples or len(test)),
        "iw_samples": iw_samples,
        "test_elbo": elbo,
        "test_iw_log_likelihood": log_likelihood,
        "iw_eval_wall_seconds": round(time.time() - start, 1),
    }


def hybrid_metrics(run: Any, iw_samples: int = 50, test_examples: int = 500) -> dict[str, Any]:
    """The Hybrid VAE table's numbers for an F-VAE or H-VAE run (Tulyakov et al., sec. 4.3) on the
    first ``test_examples`` test pairs: -log p(d, h) by the bound of eq. 2 and by importance
    sampling with ``iw_samples`` samples of q(z|d,h), and for the H-VAE the task loss of the mean
    of q(h|d) (best validation weights)."""
    import torch

    from pogm.evaluate import mean_log_likelihood, task_loss

    loaded = _loaded(run)
    test = loaded.data.test
    limit = min(len(test), test_examples)
    torch.manual_seed(0)
    result = {
        "test_examples": limit,
        "test_nll_bound": -mean_log_likelihood(loaded.model, test, k=1, limit=limit),
        "test_nll_iw": -mean_log_likelihood(loaded.model, test, k=iw_samples, chunk_size=50, limit=limit),
        "iw_samples": iw_samples,
    }
    if loaded.model.offers("predict_labels"):
        result["test_task_loss"] = task_loss(loaded.model, test, loaded.data.info["task_loss"], limit=limit)
        result["task_loss"] = loaded.data.info["task_loss"]
    return result


def factvae_metrics(run: Any, iw_samples: int = 1000, weights: str = "latest", proposal: str = "q", refine_steps: int = 300) -> dict[str, Any]:
    """The factVAE table's numbers (Ainsworth et al., Table 1) for a mocap run: log p(x) of every
    frame of the held-out trial, all groups observed, in nats per frame, and the columns of Phi
    that the group lasso zeroed; of the ``weights`` "latest" or "best" (the best validation bound).

    ``test_log_likelihood`` is the importance-weighted estimate with ``iw_samples`` samples from
    the ``proposal``: "q", the model's own q(z | x) (the bound of Burda et al. 2015), or
    "refined", a Gaussian per frame fitted to p(z | x) in ``refine_steps`` steps, mixed with q
    (`pogm.evaluate.refined`), which removes most of the amortisation gap that q leaves on a
    held-out trial. ``test_log_likelihood_q`` (q's bound) and ``test_elbo`` are always given."""
    import torch

    from pogm.evaluate import mean_log_likelihood
    from pogm.evaluate.refined import mean_refined_log_likelihood

    if proposal not in ("q", "refined"):
        raise ValueError(f"proposal must be 'q' (the model's q(z | x)) or 'refined' (fitted per frame), got {proposal!r}")
    loaded = _loaded(run, weights=weights)
    model, test = loaded.model, loaded.data.test
    torch.manual_seed(0)
    numbers = {
        "train_frames": len(loaded.data.train),
        "test_frames": len(test),
        "test_elbo": mean_log_likelihood(model, test, k=1),
        "test_log_likelihood_q": mean_log_likelihood(model, test, k=iw_samples, chunk_size=250),
        "iw_samples": iw_samples,
        "proposal": proposal,
        "zero_columns": int((model.sparsity_pattern() == 0).sum().item()),
    }
    if proposal == "refined":
        torch.manual_seed(0)
        numbers["test_log_likelihood"] = mean_refined_log_likelihood(model, test, k=iw_samples, steps=refine_steps)
        numbers["refine_steps"] = refine_steps
    else:
        numbers["test_log_likelihood"] = numbers["test_log_likelihood_q"]
    return numbers


EVALUATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "selected_errors": selected_errors,
    "likelihoods": likelihoods,
    "hybrid_metrics": hybrid_metrics,
    "factvae_metrics": factvae_metrics,
}


def resolve_evaluation(spec: RunSpec) -> Callable[[Any], dict[str, Any]]:
    """The function that evaluates the run ``spec``: the one it names in `EVALUATIONS` (or the
    function it gives), with its ``evaluate_options`` bound as a `functools.partial`."""
    evaluate = spec.evaluate
    if isinstance(evaluate, str):
        if evaluate not in EVALUATIONS:
            raise ValueError(f"run {spec.name!r}: unknown evaluation {evaluate!r}; choose one of {', '.join(EVALUATIONS)}")
        evaluate = EVALUATIONS[evaluate]
    return functools.partial(evaluate, **spec.evaluate_options) if spec.evaluate_options else evaluate
