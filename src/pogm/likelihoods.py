"""Masked likelihoods p(x | params).

Every likelihood offers ``log_prob(params, x, mask)``: the log density of each row of ``x`` under
``params``, summed over the observed entries only. ``x`` is a batch ``[B, ...]``; ``params`` may
carry extra leading dimensions (samples, enumerated classes) and broadcasts against ``x``; the
result has the leading shape of the broadcast, e.g. ``[K, B]``. Unobserved entries are removed
with ``torch.where`` (not a multiplication), so they contribute exactly zero value and zero
gradient even where the density would be infinite.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


def masked_sum(log_prob_elements: Tensor, mask: Tensor | None, event_ndim: int) -> Tensor:
    """Sum per-element log densities over the last ``event_ndim`` dims, keeping observed entries only.

    A mask with one flag per row (size 1 in every event dimension, e.g. ``[B, 1]``: fully observed
    data, or whole groups missing) is applied after the sum: the same numbers, one pass over the
    elements (and one in the backward pass) less.
    """
    if mask is not None and _row_mask_only(mask, event_ndim):
        return _keep_rows(log_prob_elements.sum(dim=tuple(range(-event_ndim, 0))), mask, event_ndim)
    if mask is not None:
        log_prob_elements = torch.where(mask, log_prob_elements, torch.zeros((), dtype=log_prob_elements.dtype, device=log_prob_elements.device))
    if event_ndim == 0:
        return log_prob_elements
    return log_prob_elements.sum(dim=tuple(range(-event_ndim, 0)))


def _row_mask_only(mask: Tensor | None, event_ndim: int) -> bool:
    """No mask, or one flag per row: size 1 in each of the ``event_ndim`` event dimensions."""
    if mask is None:
        return event_ndim > 0
    return 0 < event_ndim <= mask.dim() and all(size == 1 for size in mask.shape[mask.dim() - event_ndim :])


def _keep_rows(total: Tensor, mask: Tensor, event_ndim: int) -> Tensor:
    """``total`` ``[..., B]`` (already summed over the event) where the row's flag is True, else 0."""
    row_mask = mask.reshape(mask.shape[: mask.dim() - event_ndim])  # [B]
    return torch.where(row_mask, total, torch.zeros((), dtype=total.dtype, device=total.device))


class _BernoulliLogProbSum(torch.autograd.Function):
    """``sum_i x_i l_i - softplus(l_i)`` over the last ``event_ndim`` dims, with its gradient
    ``x - sigmoid(l)`` written out: the same values as autograd's, in fewer passes over the
    ``[K, B, D]`` logits (autograd's backward expands, copies and adds the two terms' gradients;
    about 1 ms of a 75 ms M2 step). ``x`` is data: it gets no gradient."""

    @staticmethod
    def forward(ctx, logits: Tensor, x: Tensor, event_ndim: int) -> Tensor:
        ctx.save_for_backward(logits, x)
        ctx.event_ndim = event_ndim
        return (x * logits - F.softplus(logits)).sum(dim=tuple(range(-event_ndim, 0)))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        logits, x = ctx.saved_tensors
        grad_logits = x - torch.sigmoid(logits)  # [..., B, D]
        return grad_logits * grad.reshape(*grad.shape, *([1] * ctx.event_ndim)), None, None


class Bernoulli(nn.Module):
    """p(x | logits) = prod_i sigmoid(l_i)^x_i (1 - sigmoid(l_i))^(1 - x_i), parameterised by logits.

    Its support is [0, 1]: binary values, or grey levels read as probabilities (the cross-entropy
    x l - softplus(l)). Beyond [0, 1] the term has no lower bound, so training drives it to -inf.
    """

    support = (0.0, 1.0)

    def num_params(self, dim: int) -> int:
        return dim

    def log_prob(self, logits: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
        event_ndim = x.dim() - 1
        if _row_mask_only(mask, event_ndim) and not x.requires_grad and logits.shape[logits.dim() - event_ndim :] == x.shape[1:]:
            total = _BernoulliLogProbSum.apply(logits, x, event_ndim)  # [..., B]
            return total if mask is None else _keep_rows(total, mask, event_ndim)
        # x * l - log(1 + e^l): the stable form of binary cross-entropy with logits.
        log_prob_elements = x * logits - F.softplus(logits)
        return masked_sum(log_prob_elements, mask, event_ndim)

    def mean(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)

    def sample(self, logits: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(logits))


class Gaussian(nn.Module):
    """Diagonal Gaussian p(x | mean, log_var).

    ``scale`` chooses how the log-variance is obtained:

    * ``"fixed"``: a constant ``log_var`` (default 0, i.e. unit variance);
    * ``"learned"``: one free log-variance per dimension, a parameter of this module;
    * ``"predicted"``: the network predicts it; ``params`` is then the pair ``(mean, log_var)``
      and :meth:`num_params` asks the network for twice as many outputs.

    ``min_std > 0`` (predicted scale only) puts a floor under the predicted variance: the network's
    output ``s`` becomes the variance ``exp(s) + min_std**2`` (``log_var = logaddexp(s, 2 log
    min_std)``), smooth in ``s`` and never below ``min_std**2``, so that no pixel can buy unbounded
    likelihood by shrinking its variance (config name ``gaussian-predicted:MIN_STD``). The default
    0 is the plain predicted variance ``exp(s)``.
    """

    support = (-math.inf, math.inf)  # any real value

    def __init__(self, dim: int | None = None, scale: str = "fixed", log_var: float = 0.0, min_std: float = 0.0) -> None:
        super().__init__()
        if scale not in ("fixed", "learned", "predicted"):
            raise ValueError(f"Gaussian scale must be 'fixed', 'learned' or 'predicted', got {scale!r}")
        if min_std < 0 or not math.isfinite(min_std):
            raise ValueError(f"Gaussian min_std must be a finite number >= 0, got {min_std}")
        if min_std > 0 and scale != "predicted":
            raise ValueError(f"Gaussian min_std (a floor under the predicted variance) needs scale='predicted', got scale={scale!r}")
        self.scale = scale
        self.min_std = float(min_std)
        self.min_log_var = 2.0 * math.log(min_std) if min_std > 0 else -math.inf
        if scale == "learned":
            if dim is None:
                raise ValueError("Gaussian(scale='learned') needs the data dimension `dim`")
            self.log_var = nn.Parameter(torch.full((dim,), float(log_var)))
        else:
            self.register_buffer("log_var", torch.tensor(float(log_var)), persistent=False)

    def num_params(self, dim: int) -> int:
        return 2 * dim if self.scale == "predicted" else dim

    def split(self, params: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        if self.scale == "predicted":
            if isinstance(params, tuple):
                mean, log_var = params
            else:
                mean, log_var = params.chunk(2, dim=-1)
            if self.min_std > 0:
                log_var = torch.logaddexp(log_var, torch.full((), self.min_log_var, dtype=log_var.dtype, device=log_var.device))
            return mean, log_var
        return params, self.log_var

    def log_prob(self, params: Tensor | tuple[Tensor, Tensor], x: Tensor, mask: Tensor | None = None) -> Tensor:
        mean, log_var = self.split(params)
        log_prob_elements = -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * torch.exp(-log_var))
        return masked_sum(log_prob_elements, mask, x.dim() - 1)

    def mean(self, params: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        return self.split(params)[0]

    def sample(self, params: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        mean, log_var = self.split(params)
        return mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)


class Categorical(nn.Module):
    """p(y | logits) over ``K`` classes; ``log_prob`` uses log-softmax, never probabilities."""

    def num_params(self, num_classes: int) -> int:
        return num_classes

    def log_prob(self, logits: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
        log_p = torch.log_softmax(logits, dim=-1)
        log_p_y = log_p.gather(-1, y.unsqueeze(-1).expand(*log_p.shape[:-1], 1)).squeeze(-1)
        return masked_sum(log_p_y, mask, 0)

    def mean(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=-1)

    def sample(self, logits: Tensor) -> Tensor:
        return torch.distributions.Categorical(logits=logits).sample()


class ObservedOrNot(nn.Module):
    """Depth pixels that may be unobserved (Tulyakov et al., section 3.1).

    Each pixel u is observed with probability ``sigmoid(l_u)`` (the map b); an observed pixel has
    a Gaussian value, an unobserved one the symbolic value "no depth". The density over the
    enlarged domain R u {unobserved} is, per pixel,

        p(d_u | z) = sigmoid(-l_u)                          if d_u is unobserved,
                     sigmoid(l_u) N(d_u; mu_u, exp(s_u))     otherwise,

    which sums (and integrates) to one over both states. Here the observation mask is the data b
    itself, not a request to ignore entries: ``log_prob(params, x, mask)`` scores ``mask`` with the
    Bernoulli part and ``x`` with the Gaussian part where ``mask`` is True. ``params`` is
    ``[..., 3 D]``: observation logits, means and log-variances (or ``[..., 2 D]`` with a fixed
    log-variance when ``scale="fixed"``); ``min_std`` floors the predicted variance as in `Gaussian`.
    """

    support = Gaussian.support  # observed depths may be any real value; the mask is the other half of the data

    def __init__(self, dim: int | None = None, scale: str = "predicted", log_var: float = 0.0, min_std: float = 0.0) -> None:
        super().__init__()
        self.value = Gaussian(dim, scale=scale, log_var=log_var, min_std=min_std)

    def num_params(self, dim: int) -> int:
        return dim + self.value.num_params(dim)

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(observation logits, Gaussian params)``."""
        dim = params.shape[-1] // (1 + self.value.num_params(1))
        return params[..., :dim], params[..., dim:]

    def log_prob(self, params: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
        logits, value_params = self.split(params)
        observed = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.expand(x.shape)
        mean, log_var = self.value.split(value_params)
        log_value = -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * torch.exp(-log_var))
        # log sigmoid(l) = -softplus(-l), log sigmoid(-l) = -softplus(l): stable for any logit.
        log_observed = -F.softplus(-logits) + log_value
        log_unobserved = -F.softplus(logits)
        log_prob_elements = torch.where(observed, log_observed, log_unobserved.expand(log_observed.shape))
        return log_prob_elements.sum(dim=tuple(range(-(x.dim() - 1), 0)))

    def observed_probability(self, params: Tensor) -> Tensor:
        return torch.sigmoid(self.split(params)[0])

    def mean(self, params: Tensor) -> Tensor:
        """The mean depth of an observed pixel (the value part)."""
        return self.value.mean(self.split(params)[1])

    def sample(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(depth, observed)``: depth zero-filled where the sampled map b says unobserved."""
        logits, value_params = self.split(params)
        observed = torch.bernoulli(torch.sigmoid(logits)).bool()
        depth = self.value.sample(value_params)
        return torch.where(observed, depth, torch.zeros((), dtype=depth.dtype, device=depth.device)), observed


def _positive_std(name: str, what: str = "the fixed standard deviation") -> float:
    """The standard deviation in ``"gaussian:0.1"``, ``"depth:0.05"`` or ``"gaussian-predicted:0.02"``."""
    kind, _, text = name.partition(":")
    try:
        std = float(text)
    except ValueError:
        std = -1.0
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"likelihood {name!r}: {what} after '{kind}:' must be a positive number, e.g. {kind}:0.1")
    return std


def make_likelihood(name: str, dim: int) -> nn.Module:
    """Likelihood by config name: ``bernoulli``, ``gaussian`` (unit variance), ``gaussian:STD``
    (fixed standard deviation STD, e.g. ``gaussian:0.1``), ``gaussian-learned`` (one learned
    log-variance per dimension), ``gaussian-predicted`` (heteroscedastic),
    ``gaussian-predicted:MIN_STD`` (heteroscedastic, the predicted standard deviation never below
    MIN_STD: see `Gaussian`), ``depth`` (each pixel observed or not, and Gaussian where observed:
    `ObservedOrNot`), ``depth:STD`` (the same with a fixed standard deviation of the observed
    values) or ``depth-predicted:MIN_STD`` (``depth`` with the floor MIN_STD under the predicted
    standard deviation)."""
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(dim, scale="fixed")
    if name.startswith("gaussian:"):
        return Gaussian(dim, scale="fixed", log_var=2.0 * math.log(_positive_std(name)))
    if name == "gaussian-learned":
        return Gaussian(dim, scale="learned")
    if name == "gaussian-predicted":
        return Gaussian(dim, scale="predicted")
    if name.startswith("gaussian-predicted:"):
        return Gaussian(dim, scale="predicted", min_std=_positive_std(name, "the floor under the predicted standard deviation"))
    if name == "depth":
        return ObservedOrNot(dim, scale="predicted")
    if name.startswith("depth:"):
        return ObservedOrNot(dim, scale="fixed", log_var=2.0 * math.log(_positive_std(name)))
    if name.startswith("depth-predicted:"):
        return ObservedOrNot(dim, scale="predicted", min_std=_positive_std(name, "the floor under the predicted standard deviation"))
    raise ValueError(
        f"unknown likelihood {name!r}: choose bernoulli, gaussian, gaussian:STD, gaussian-learned, gaussian-predicted, "
        "gaussian-predicted:MIN_STD, depth, depth:STD or depth-predicted:MIN_STD"
    )


def support(name: str) -> tuple[float, float]:
    """``(low, high)``: the observed values x the likelihood ``name`` (a `make_likelihood` name)
    gives a density to: [0, 1] for ``bernoulli``, every real number for ``gaussian*`` and
    ``depth*``.

    Raises:
        ValueError: an unknown name (as `make_likelihood`).
    """
    return make_likelihood(name, 1).support
