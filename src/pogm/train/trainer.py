"""The Trainer: Adam or SGD with momentum, KL warm-up by optimizer step, gradient clipping, evaluation on the
validation split for model selection, progress bars, ``metrics.jsonl``, atomic checkpoints and
exact resume.

Models with several networks and several losses (the adversarial ones) declare
``parameter_groups()`` -> ``{name: [parameters]}`` and return one loss per group as
``terms["loss/<name>"]``. Each group gets its own Adam optimizer, which steps only on the
gradient of its own loss with respect to its own parameters (``torch.autograd.grad``), so a loss
can never move another group's parameters, whatever the graph. A group whose loss is missing from
the terms (a gated update) is not stepped. ``schedule`` says when the groups step:

* ``"simultaneous"``: one forward pass, every group steps on it;
* ``"alternating"``: the discriminator groups (``model.discriminator_groups``) step
  ``discriminator_steps`` times on fresh batches, then the other groups once.

A crash loses at most the work since the last checkpoint, which is written at every evaluation
(every ``eval_every`` epochs, or ``eval_every_steps`` steps) and when training ends; a resumed run ends bit for bit where the
uninterrupted one would (see `pogm.checkpoint` for how checkpoints survive a kill at any
moment). SIGINT (Ctrl-C) and SIGTERM stop training at the next step boundary with a checkpoint
(`TrainingInterrupted`); a second Ctrl-C stops at once.

A non-finite loss or gradient makes no update. ``on_nonfinite="stop"`` (the default) stops the
run with a `FloatingPointError` naming the non-finite terms or parameters; ``"skip"`` drops the
batch and goes on, until ``max_nonfinite_skips`` batches in a row were bad. (In the alternating
schedule the discriminator steps taken before a bad generator batch stay.) A checkpoint is never
written from non-finite parameters.

Given a `pogm.train.distributed.Distributed` with several processes (torchrun), the Trainer trains
data-parallel: each process steps on its shard of every batch, gradients are averaged by an
explicit all-reduce per step, decisions are taken collectively, and only rank 0 evaluates and
writes files (see `pogm.train.distributed` for the design). With one process nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import warnings
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from pogm.data.dataset import PartialDataset
from pogm.data.streams import SemiSupervisedStream
from pogm.data.dataset import evaluation_view
from pogm.evaluate.metrics import classification_error_rate, mean_elbo, task_loss_rate
from pogm import checkpoint
from pogm.train.averaging import WeightAverage
from pogm.train.config import COMPILE_MODES, NONFINITE_POLICIES, SCHEDULES, TrainConfig
from pogm.train.distributed import (
    SINGLE,
    Distributed,
    WorldSizeMismatch,
    persistent_buffers,
    resume_command,
)
from pogm.train.guards import NonFiniteStep, flushes_denormals, nonfinite_gradients, nonfinite_terms
from pogm.train.optimizers import SINGLE_GROUP, group_optimizers, kl_weight, lr_factor, parameter_groups
from pogm.train.signals import StopSignals, TrainingInterrupted
from pogm.train.sync_free import PendingSteps, conditional_adam_step, finite_flag, supports_conditional_step


def _say(message: str) -> None:
    """A line on stderr that does not break a progress bar."""
    tqdm.write(f"[pogm] {message}", file=sys.stderr)


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX tiles), where
    ``train.precision=bf16`` pays (the M2 and SDGM CPU recipes: 1.55x and 1.67x the steps per CPU-second
    on a Xeon with AMX, docs/results.md). Elsewhere oneDNN emulates bf16, usually slower than fp32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


class Trainer:
    """Trains ``model`` on ``stream`` and keeps the run directory up to date."""

    def __init__(
        self,
        model: torch.nn.Module,
        stream: SemiSupervisedStream,
        config: TrainConfig,
        run_dir: Path,
        valid: PartialDataset | None = None,
        test: PartialDataset | None = None,
        task_loss: dict | None = None,
        dist: Distributed = SINGLE,
    ) -> None:
        if config.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {config.precision!r}")
        if config.eval_every < 1:
            raise ValueError(f"train.eval_every must be >= 1 (epochs between evaluations), got {config.eval_every}")
        if config.eval_every_steps is not None and config.eval_every_steps < 1:
            raise ValueError(f"train.eval_every_steps must be >= 1 (optimizer steps between evaluations) or null (count epochs), got {config.eval_every_steps}")
        if torch.device(config.device).type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"train.device={config.device}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); use cpu")
            if config.precision == "bf16" and not torch.cuda.is_bf16_supported():
                raise ValueError("train.precision=bf16: this GPU does not support bfloat16; use fp32")
        elif config.precision == "bf16" and not cpu_has_bf16_units():
            warnings.warn(
                "train.precision=bf16: this CPU has no bfloat16 matrix units (AVX512-BF16 or AMX), so the bf16 matrix "
                "multiplies are emulated and usually slower than fp32; set train.precision=fp32",
                stacklevel=2,
            )
        stream_world = (getattr(stream, "rank", 0), getattr(stream, "world_size", 1))
        if stream_world != (dist.rank, dist.world_size):
            raise ValueError(f"the stream is shard {stream_world[0]} of {stream_world[1]} but this is process {dist.rank} of {dist.world_size}")
        self.dist = dist
        self.show_progress = config.progress and dist.is_main  # progress bars and messages: rank 0 only
        self.model = model
        self.stream = stream
        self.config = config
        self.run_dir = Path(run_dir)
        self.task_loss_spec = task_loss  # the source's task-loss spec, for models that predict continuous labels
        # Binarised once here, not at every evaluation (evaluation_view of a view is the view itself).
        self.valid = None if valid is None else evaluation_view(valid)
        self.test = None if test is None else evaluation_view(test)
        # Parameters with a proximal step (the factVAE's Phi, Algorithm 1 of Ainsworth et al. 2018)
        # take plain gradient steps of the model's own size eta, then its proximal operator; Adam
        # steps on everything else.
        proximal = list(model.proximal_parameters())
        proximal_ids = {id(p) for p in proximal}
        self.groups = parameter_groups(model, proximal_ids)
        if config.schedule not in SCHEDULES:
            raise ValueError(f"train.schedule must be one of {list(SCHEDULES)}, got {config.schedule!r}")
        if config.compile_mode not in COMPILE_MODES:
            raise ValueError(f"train.compile_mode must be one of {list(COMPILE_MODES)}, got {config.compile_mode!r}")
        if config.on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"train.on_nonfinite must be one of {list(NONFINITE_POLICIES)}, got {config.on_nonfinite!r}")
        if config.max_nonfinite_skips < 1:
            raise ValueError(f"train.max_nonfinite_skips must be >= 1, got {config.max_nonfinite_skips}")
        if config.discriminator_steps < 1:
            raise ValueError(f"train.discriminator_steps must be >= 1, got {config.discriminator_steps}")
        self.discriminator_groups = tuple(model.discriminator_groups)
        if config.schedule == "alternating" and not self.discriminator_groups:
            raise ValueError(f"train.schedule=alternating needs a model with a discriminator; {type(model).__name__} has none (use simultaneous)")
        self.optimizers = group_optimizers(self.groups, config)
        self.optimizer = next(iter(self.optimizers.values()))  # the first group's (the only one for most models)
        self.proximal_optimizer = torch.optim.SGD(proximal, lr=model.proximal_lr) if proximal else None
        if config.lr_decay_every < 1 or not 0 < config.lr_decay <= 1:
            raise ValueError(f"need lr_decay in (0, 1] and lr_decay_every >= 1; got {config.lr_decay} and {config.lr_decay_every}")
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor) for name, opt in self.optimizers.items()}
        self.param_names = {id(p): name for name, p in model.named_parameters()}
        self._compiled_loss = None  # see _loss_function
        self.step = 0
        self.best_score: float | None = None
        self.train_cpu_seconds = 0.0
        self.train_wall_seconds = 0.0
        # The running sums of the training terms over the current epoch (saved in checkpoints, so
        # that an epoch's record is the same whether or not the run was stopped inside it).
        self.epoch_sums: dict[str, float] = {}
        self.epoch_count = 0
        self.skipped_batches = 0  # batches skipped for a non-finite loss or gradient, in all
        self.consecutive_skips = 0
        self.generation: checkpoint.Generation | None = None  # the last checkpoint committed
        self.saved_step: int | None = None  # the step of the checkpoint on disk, if this Trainer wrote or read it
        # Multi-process training: every parameter that trains (for the gradient all-reduce of
        # single-loss models, proximal ones included); the processes start from rank 0's weights.
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.has_buffers = bool(persistent_buffers(model))  # batch-norm statistics, kept equal across processes
        self.sync_free = self._sync_free_setting()
        self.pending = PendingSteps()  # the sync-free steps' terms and flags, not yet read
        dist.broadcast_module(model)
        # The weights evaluated, selected and saved as best (train.ema_decay): the model's own, or their average.
        self.averaged = None if config.ema_decay is None else WeightAverage(model, config.ema_decay)

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The weights that evaluation scores and ``best.safetensors`` keeps: the average of the
        weights when ``train.ema_decay`` is set, else the model that trains."""
        return self.model if self.averaged is None else self.averaged.module

    def learning_rates(self) -> dict[str, float]:
        """The current learning rates as logged: ``lr`` (the first group's), and ``lr/<group>`` for
        every group when the groups' rates differ (``train.group_lr``)."""
        rates = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        logged = {"lr": self.optimizer.param_groups[0]["lr"]}
        if len(set(rates.values())) > 1:
            logged.update({f"lr/{name}": lr for name, lr in rates.items()})
        return logged

    def _sync_free_setting(self) -> bool:
        """``train.sync_free``, resolved: None means on for CUDA when the step can be sync-free."""
        if self.config.sync_every < 1:
            raise ValueError(f"train.sync_every must be >= 1, got {self.config.sync_every}")
        blockers = []
        if set(self.optimizers) != {SINGLE_GROUP}:
            blockers.append(f"{type(self.model).__name__} steps several parameter groups")
        if self.proximal_optimizer is not None:
            blockers.append("the proximal step reads its weight on the host")
        if self.dist.active:
            blockers.append("several processes decide collectively at every step")
        if not supports_conditional_step(self.optimizer):
            blockers.append("the optimizer is not fused Adam (no fused kernel for this device and dtype)")
        wanted = self.config.sync_free
        if wanted is None:
            return torch.device(self.config.device).type == "cuda" and not blockers
        if wanted and blockers:
            raise ValueError(f"train.sync_free=true is not possible here: {'; '.join(blockers)}; drop the setting")
        return bool(wanted)

    # ------------------------------------------------------------------ schedule
    def _lr_factor(self, epoch: int) -> float:
        return lr_factor(self.config, epoch)

    def kl_weight(self) -> float:
        """The KL weight of the current step (`pogm.train.optimizers.kl_weight`)."""
        return kl_weight(self.config, self.step)

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(device_type=torch.device(self.config.device).type, dtype=torch.bfloat16)
        return nullcontext()

    def _budget_left(self) -> bool:
        """Whether the CPU budget (of all processes together) has time left."""
        budget = self.config.cpu_budget_seconds
        if budget is None:
            return True
        return self.dist.all_reduce([self.train_cpu_seconds])[0] < budget

    def _done(self) -> bool:
        if self.config.max_steps is not None and self.step >= self.config.max_steps:
            return True
        if self.config.max_steps is None and self.stream.epoch >= self.config.epochs:
            return True
        return not self._budget_left()

    # ------------------------------------------------------------------ training
    def train_step(self, batch) -> dict[str, float] | None:
        """One optimizer step of every group (the alternating schedule draws its discriminator
        batches from the stream); returns the loss terms as floats (None for a sync-free step,
        whose terms stay on the device until `read_pending`)."""
        self.model.train()
        if self.sync_free:
            self.pending.add(self.step, *self._sync_free_step(batch))
            self._update_average()
            self.step += 1
            return None
        if len(self.optimizers) == 1 and SINGLE_GROUP in self.optimizers:
            terms = self._single_loss_step(batch)
        elif self.config.schedule == "alternating":
            for _ in range(self.config.discriminator_steps):
                self._group_step(self.stream.next_batch(), self.discriminator_groups)
            terms = self._group_step(batch, tuple(g for g in self.groups if g not in self.discriminator_groups))
        else:
            terms = self._group_step(batch, tuple(self.groups))
        if self.dist.active and self.has_buffers:
            self.dist.broadcast_module(self.model, buffers_only=True)  # batch-norm statistics: rank 0's, as DDP does
        self._update_average()
        self.step += 1
        return {name: float(value.detach()) for name, value in terms.items()}

    def _update_average(self) -> None:
        if self.averaged is not None:
            self.averaged.update(self.model)

    def _losses(self, batch) -> dict[str, torch.Tensor]:
        with self._autocast():
            return self._loss_function(batch, kl_weight=self.kl_weight(), step=self.step)

    @property
    def _loss_function(self):
        """``model.loss``, compiled once (shapes specialised) when ``train.compile`` is set."""
        if not self.config.compile:
            return self.model.loss
        if self._compiled_loss is None:
            import torch._inductor.config as inductor

            # Random draws (z samples, noise) through PyTorch's generator, as in eager mode, so that a
            # compiled run draws the same numbers and resumes exactly.
            inductor.fallback_random = True
            self._compiled_loss = torch.compile(self.model.loss, dynamic=False, mode=self.config.compile_mode)
        return self._compiled_loss

    def _last_checkpoint(self) -> str:
        """Where the last checkpoint is, for error messages."""
        command = resume_command(self.run_dir, self.dist.world_size)
        if self.saved_step is not None:
            return f"the last checkpoint (step {self.saved_step}) in {self.run_dir} is intact: resume with `{command}`"
        if (self.run_dir / checkpoint.STATE).exists():
            return f"the last checkpoint in {self.run_dir} is intact: resume with `{command}`"
        return "no checkpoint had been written yet"

    def _nonfinite(self, problem: str) -> NonFiniteStep:
        """The error for a bad step: what went bad, what to do, and where the last checkpoint is."""
        remedy = "lower the learning rate (--set train.lr=...) or set train.grad_clip"
        if self.config.on_nonfinite == "stop":
            remedy += ", or skip such batches (--set train.on_nonfinite=skip)"
        return NonFiniteStep(f"{problem}; no update was made. To fix it, {remedy}; {self._last_checkpoint()}", problem)

    def _check_finite(self, name: str, loss: torch.Tensor, terms: dict[str, Any]) -> None:
        """Raise NonFiniteStep when ``loss`` is not finite, naming every non-finite term."""
        if torch.isfinite(loss):
            return
        bad = nonfinite_terms(terms)
        raise self._nonfinite(f"the {name} became {loss.item()} at step {self.step} (non-finite terms: {', '.join(bad)})")

    def _check_gradients(self, name: str, params: Iterable[torch.nn.Parameter], grads: Iterable[torch.Tensor | None]) -> None:
        """Raise NonFiniteStep when a gradient is not finite, naming the parameters (one sync
        when every gradient is finite)."""
        bad = nonfinite_gradients(params, grads, self.param_names)
        if not bad:
            return
        shown = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
        raise self._nonfinite(f"the gradient of the {name} became non-finite at step {self.step} (in {shown})")

    def _single_loss_step(self, batch) -> dict[str, torch.Tensor]:
        terms = self._losses(batch)
        loss = terms["loss"]
        if self.dist.active:
            self._backward_and_average(loss, terms)
        else:
            self._check_finite("loss", loss, terms)
            self.model.zero_grad(set_to_none=True)
            loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        try:
            self._check_gradients("loss", params, [p.grad for p in params])
        except NonFiniteStep:
            self.model.zero_grad(set_to_none=True)
            raise
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        if self.proximal_optimizer is not None:
            self.proximal_optimizer.step()
            self.model.proximal_step(self.kl_weight())  # the model decides whether the KL weight scales it
        return terms

    def _sync_free_step(self, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A single-loss step without host synchronisation (`pogm.train.sync_free`): the update is
        skipped on the device when the loss or a gradient is not finite."""
        terms = self._losses(batch)
        loss = terms["loss"]
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self.trainable if p.grad is not None]
        finite = finite_flag(loss, grads)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.config.grad_clip, foreach=True)
        conditional_adam_step(self.optimizer, finite)
        return terms, finite

    def read_pending(self) -> None:
        """Read the sync-free steps taken since the last read (one copy to the host) and account
        for them in order, as the synchronous step does at once: the epoch's sums, or a skipped
        batch, or the error of ``on_nonfinite``."""
        if not len(self.pending):
            return
        cpu0, wall0 = time.process_time(), time.perf_counter()
        steps = self.pending.read()  # waits for the device to finish the steps: training time
        self.train_cpu_seconds += time.process_time() - cpu0
        self.train_wall_seconds += time.perf_counter() - wall0
        for step, terms, finite in steps:
            if finite:
                self._add_terms(terms)
                continue
            bad = ", ".join(f"{k}={v}" for k, v in terms.items() if not math.isfinite(v)) or "a gradient"
            problem = f"the loss or a gradient became non-finite at step {step} (non-finite: {bad}; noticed {self.step - step} steps later, train.sync_free)"
            self._skip_or_stop(self._nonfinite(problem))

    def _add_terms(self, terms: dict[str, float]) -> None:
        """Add a good step's loss terms to the epoch's running sums."""
        self.consecutive_skips = 0
        for name, value in terms.items():
            self.epoch_sums[name] = self.epoch_sums.get(name, 0.0) + value
        self.epoch_count += 1

    def _backward_and_average(self, loss: torch.Tensor, terms: dict[str, Any]) -> None:
        """Multi-process: backward (unless the loss is not finite here), then every parameter's
        gradient averaged over the processes (one all-reduce, which also tells every process
        whether any loss was not finite: then all raise NonFiniteStep)."""
        finite = bool(torch.isfinite(loss))
        self.model.zero_grad(set_to_none=True)
        if finite:
            loss.backward()
        summed, (bad,) = self.dist.sum_gradients(self.trainable, [p.grad for p in self.trainable], [float(not finite)])
        if bad:
            self.model.zero_grad(set_to_none=True)
            self._raise_nonfinite_loss("loss", loss, terms, int(bad))
        for p, grad in zip(self.trainable, summed):
            p.grad = None if grad is None else grad / self.dist.world_size

    def _raise_nonfinite_loss(self, name: str, loss: torch.Tensor | None, terms: dict[str, Any], processes: int) -> None:
        """The NonFiniteStep of a step in which ``processes`` processes had a non-finite loss."""
        if loss is not None:
            self._check_finite(name, loss, terms)  # raises with this process's details if it is one of them
        raise self._nonfinite(f"a loss became non-finite at step {self.step} in {processes} of the {self.dist.world_size} processes")

    def _group_gradients(self, terms: dict[str, Any], names: tuple[str, ...]) -> tuple[list[str], dict[str, tuple[torch.Tensor | None, ...]]]:
        """The groups of ``names`` that step and the gradient of each one's loss with respect to
        its parameters; with several processes, averaged over the processes that computed it."""
        active = [g for g in names if f"loss/{g}" in terms]
        if not self.dist.active:
            for g in active:
                self._check_finite(f"loss of group {g!r}", terms[f"loss/{g}"], terms)
            self.model.zero_grad(set_to_none=True)
            grads = {}
            for i, g in enumerate(active):
                grads[g] = torch.autograd.grad(terms[f"loss/{g}"], self.groups[g], retain_graph=i + 1 < len(active), allow_unused=True)
            return active, grads
        bad = next((g for g in active if not torch.isfinite(terms[f"loss/{g}"])), None)
        self.model.zero_grad(set_to_none=True)
        local = {g: (None,) * len(self.groups[g]) for g in names}
        if bad is None:
            for i, g in enumerate(active):
                local[g] = torch.autograd.grad(terms[f"loss/{g}"], self.groups[g], retain_graph=i + 1 < len(active), allow_unused=True)
        params = [p for g in names for p in self.groups[g]]
        summed, extra = self.dist.sum_gradients(params, [x for g in names for x in local[g]], [float(g in active) for g in names] + [float(bad is not None)])
        if extra[-1]:
            self._raise_nonfinite_loss(f"loss of group {bad!r}", None if bad is None else terms[f"loss/{bad}"], terms, int(extra[-1]))
        grads, offset = {}, 0
        for g, count in zip(names, extra[:-1]):
            n = len(self.groups[g])
            if count:  # the mean over the processes whose loss included this group
                grads[g] = tuple(None if x is None else x / count for x in summed[offset : offset + n])
            offset += n
        return [g for g in names if g in grads], grads

    def _group_step(self, batch, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Step the groups ``names`` whose losses are present, each on the gradient of its own
        loss with respect to its own parameters; every gradient is taken before any step."""
        terms = self._losses(batch)
        active, grads = self._group_gradients(terms, names)
        for g in active:  # every group's gradients are checked before any group steps
            self._check_gradients(f"loss of group {g!r}", self.groups[g], grads[g])
        for g in active:
            for p, grad in zip(self.groups[g], grads[g]):
                p.grad = grad
            if self.config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.groups[g], self.config.grad_clip)
            self.optimizers[g].step()
        return terms

    def fit(self) -> dict[str, Any]:
        """Train until the epoch, step or CPU budget runs out; returns the last evaluation record.

        Raises TrainingInterrupted (after a checkpoint) on SIGINT or SIGTERM, and FloatingPointError
        (without one) when a loss or gradient is not finite and the policy says stop."""
        record: dict[str, Any] = {}
        was_flushing = flushes_denormals()
        if self.config.flush_denormal:
            torch.set_flush_denormal(True)
        try:
            record = self._fit()
        finally:  # the setting is process-wide: leave it as it was found
            torch.set_flush_denormal(was_flushing)
        return record

    def _step_schedules(self) -> None:
        """Advance every group's learning-rate schedule by one epoch. The schedule counts epochs from
        step 0 for every group, also for a group whose loss has been gated off so far (M1+M2's M2
        during M1's phase), so PyTorch's warning about a scheduler stepping before its optimizer
        does not apply and is silenced here."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
            for scheduler in self.schedulers.values():
                scheduler.step()

    def _fit(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        self._check_processes_agree()
        with StopSignals() as signals:
            while not self._done():
                epoch = self.stream.epoch
                self._train_epoch(epoch, signals)
                epoch_finished = self.stream.epoch > epoch
                if epoch_finished:
                    self._step_schedules()
                train_terms = self._train_terms()
                if epoch_finished:  # before the checkpoint, which then holds the next epoch's empty sums
                    self.epoch_sums, self.epoch_count = {}, 0
                if self._evaluation_due(epoch_finished) or self._done():
                    record = self.evaluate_and_checkpoint(train_terms)
                self._stop_if_signalled(signals)
        return record

    def _evaluation_due(self, epoch_finished: bool) -> bool:
        """Whether to evaluate and checkpoint now: every ``eval_every_steps`` optimizer steps if set
        (`_train_epoch` stops there, mid-epoch if need be), else every ``eval_every`` epochs."""
        if self.config.eval_every_steps is not None:
            return self.step > 0 and self.step % self.config.eval_every_steps == 0
        return epoch_finished and self.stream.epoch % self.config.eval_every == 0

    def _train_terms(self) -> dict[str, float]:
        """The means of the training terms over the epoch's steps so far (with several processes,
        over every process's shards: the means over the whole batches)."""
        self.read_pending()
        if not self.dist.active:
            return {f"train_{k}": v / max(self.epoch_count, 1) for k, v in self.epoch_sums.items()}
        everyone = self.dist.all_gather_object((self.epoch_sums, self.epoch_count))
        count = sum(c for _, c in everyone)
        names = dict.fromkeys(k for sums, _ in everyone for k in sums)
        return {f"train_{k}": sum(sums.get(k, 0.0) for sums, _ in everyone) / max(count, 1) for k in names}

    def _check_processes_agree(self) -> None:
        """Several processes: refuse to train unless they stand at the same step of the same stream."""
        if not self.dist.active:
            return
        generator = hashlib.sha256(self.stream.generator.get_state().cpu().numpy().tobytes()).hexdigest()[:16]
        mine = {"step": self.step, "epoch": self.stream.epoch, "position": self.stream._pos, "examples": len(self.stream.dataset), "stream": generator}
        everyone = self.dist.all_gather_object(mine)
        if any(other != everyone[0] for other in everyone):
            raise RuntimeError(f"the {self.dist.world_size} processes disagree on where training stands: {everyone}; every process must run the same command on the same data")

    def _train_epoch(self, epoch: int, signals: StopSignals) -> None:
        """Steps until the epoch (or the run) ends, a step-counted evaluation is due, or a signal
        asks to stop."""
        bar = tqdm(total=self.stream.steps_per_epoch, initial=self.stream._pos, desc=f"epoch {epoch + 1}", disable=not self.show_progress, leave=False)
        try:
            done = self._done()  # once per step: with several processes it is a collective
            while self.stream.epoch == epoch and not done:
                self._timed_step()
                bar.update(1)
                if self.epoch_count and self.epoch_count % 10 == 0:
                    bar.set_postfix(loss=f"{self.epoch_sums['loss'] / self.epoch_count:.3f}")
                done = self._done()
                if self.stream.epoch == epoch and not done:
                    if self._evaluation_due(epoch_finished=False):
                        break  # `_fit` evaluates and checkpoints mid-epoch, then calls again
                    # Not at the epoch's (or the run's) end: after its last step, `_fit` steps the
                    # schedulers and evaluates first, so that the checkpoint covers them.
                    self._stop_if_signalled(signals)
        finally:
            bar.close()

    def _timed_step(self) -> None:
        """One training step on the next batch, timed and added to the epoch's sums (or skipped)."""
        cpu0, wall0 = time.process_time(), time.perf_counter()
        try:
            terms = self.train_step(self.stream.next_batch())
        except NonFiniteStep as error:
            self._skip_or_stop(error)
            return
        finally:
            self.train_cpu_seconds += time.process_time() - cpu0
            self.train_wall_seconds += time.perf_counter() - wall0
        if terms is None:  # sync-free: read the steps every sync_every steps
            if self.step % self.config.sync_every == 0:
                self.read_pending()
            return
        self._add_terms(terms)

    def _skip_or_stop(self, error: NonFiniteStep) -> None:
        """Apply ``on_nonfinite`` to a bad batch: re-raise, or count it as skipped (and stop after
        ``max_nonfinite_skips`` in a row)."""
        if self.config.on_nonfinite == "stop":
            raise error
        self.skipped_batches += 1
        self.consecutive_skips += 1
        limit = self.config.max_nonfinite_skips
        if self.consecutive_skips >= limit:
            raise FloatingPointError(
                f"{self.consecutive_skips} batches in a row had a non-finite loss or gradient (train.max_nonfinite_skips={limit}): "
                f"the training has diverged; the last was: {error.problem}. Lower the learning rate (--set train.lr=...) or set "
                f"train.grad_clip; {self._last_checkpoint()}"
            ) from error
        if self.dist.is_main:
            _say(f"skipped a batch: {error.problem} ({self.consecutive_skips} in a row; the run stops at {limit})")

    def _stop_if_signalled(self, signals: StopSignals) -> None:
        """After SIGINT or SIGTERM: save a checkpoint (unless one for this step exists) and raise
        TrainingInterrupted. With several processes, a signal to any of them stops all of them here."""
        received = signals.received
        if self.dist.active:
            received = int(self.dist.all_reduce([received or 0], op="max")[0]) or None
        if received is None:
            return
        if self.saved_step != self.step:
            self.save()
        raise TrainingInterrupted(self.run_dir, self.step, received, self.dist.world_size)

    # ------------------------------------------------------------------ evaluation and checkpoints
    def evaluate(self) -> dict[str, float]:
        """Validation metrics (used for model selection) and test metrics (only reported)."""
        metrics: dict[str, float] = {}
        model = self.evaluated_model
        can_classify = model.offers("classify")
        can_predict = model.offers("predict_labels") and self.task_loss_spec is not None
        model.eval()
        # Evaluation draws random numbers (ELBO samples); fork the RNG so that training continues
        # with the same stream whether or not an evaluation happened (exact resume mid-epoch).
        devices = [torch.device(self.config.device)] if torch.device(self.config.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            for split, data in (("valid", self.valid), ("test", self.test)):
                if data is None or len(data) == 0:
                    continue
                labelled = data.num_labelled  # label-based metrics score these rows only
                if can_classify and labelled:
                    metrics[f"{split}_error"] = classification_error_rate(model, data, self.config.eval_batch_size).error
                if can_predict and labelled:
                    metrics[f"{split}_task_loss"] = task_loss_rate(model, data, self.task_loss_spec, self.config.eval_batch_size).loss
                if (can_classify or can_predict) and labelled:
                    metrics[f"{split}_labelled_rows"] = labelled
                if split == "valid" and model.offers("log_weights"):
                    metrics["valid_elbo"] = mean_elbo(model, data, self.config.eval_batch_size, self.config.eval_elbo_limit)
                if split == "valid":
                    metrics.update({f"valid_{name}": value for name, value in model.validation_metrics(data).items()})
                metrics.update({f"{split}_{name}": value for name, value in model.evaluation_metrics(data).items()})
        return metrics

    def selection_score(self, metrics: dict[str, float]) -> float | None:
        """Higher is better: minus the validation error if there is one, else the validation ELBO."""
        if "valid_error" in metrics:
            return -metrics["valid_error"]
        return metrics.get("valid_elbo")

    def evaluate_and_checkpoint(self, train_terms: dict[str, float]) -> dict[str, Any]:
        """Evaluate, append the record to ``metrics.jsonl`` and write a checkpoint that covers it.

        With several processes, rank 0 evaluates and writes while the others wait; every process
        returns the record."""
        self._check_parameters_finite()
        ranks = self._rank_states()
        record: dict[str, Any] = {}
        if self.dist.is_main:
            metrics = self.evaluate()
            cpu_seconds = self.train_cpu_seconds if ranks is None else sum(r["train_cpu_seconds"] for r in ranks)
            record = {
                "step": self.step,
                "epoch": self.stream.epoch,
                "train_cpu_seconds": round(cpu_seconds, 3),  # of all processes
                "train_wall_seconds": round(self.train_wall_seconds, 3),
                **self.learning_rates(),
                **train_terms,
                **metrics,
            }
            if self.dist.active:
                record["processes"] = self.dist.world_size
            if self.skipped_batches:
                record["skipped_batches"] = self.skipped_batches
            score = self.selection_score(metrics)
            if score is not None and not math.isnan(score) and (self.best_score is None or score > self.best_score):
                self.best_score = score
                record["best"] = True
                checkpoint.save_weights(self.run_dir / "best.safetensors", self.evaluated_model)
            # The record goes first: the checkpoint notes the file's length, so that a resume from it
            # drops whatever a killed run appended after it, and never loses this record.
            checkpoint.append_metrics(self.run_dir, record)
        self._write_checkpoint(ranks)  # the weights were checked above
        if self.dist.active:
            record, self.best_score = self.dist.broadcast_object((record, self.best_score))
        if self.show_progress:
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k in ("epoch", "step", "train_loss", "valid_error", "test_error", "valid_elbo", "valid_task_loss")}
            tqdm.write(f"[pogm] {shown}")
        return record

    def _rank_states(self) -> list[dict[str, Any]] | None:
        """Several processes: what differs between them (RNG, running sums, timers), by rank."""
        if not self.dist.active:
            return None
        mine = {
            "torch_rng": torch.get_rng_state(),
            "epoch_sums": dict(self.epoch_sums),
            "epoch_count": self.epoch_count,
            "train_cpu_seconds": self.train_cpu_seconds,
            "train_wall_seconds": self.train_wall_seconds,
        }
        device = torch.device(self.config.device)
        if device.type == "cuda":
            mine["cuda_rng"] = torch.cuda.get_rng_state(device).cpu()
        return self.dist.all_gather_object(mine)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "proximal_optimizer": None if self.proximal_optimizer is None else self.proximal_optimizer.state_dict(),
            "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
            "stream": self.stream.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_score": self.best_score,
            "train_cpu_seconds": self.train_cpu_seconds,
            "train_wall_seconds": self.train_wall_seconds,
            "epoch_sums": dict(self.epoch_sums),
            "epoch_count": self.epoch_count,
            "skipped_batches": self.skipped_batches,
            "consecutive_skips": self.consecutive_skips,
            "metrics_bytes": checkpoint.metrics_size(self.run_dir),
        }
        if self.averaged is not None:
            state["weight_average"] = self.averaged.state_dict()
        device = torch.device(self.config.device)
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device).cpu()
        return state

    def _check_parameters_finite(self) -> None:
        """Refuse to checkpoint non-finite weights (they would poison every resume)."""
        bad = [name for name, value in self.model.state_dict().items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if bad:
            raise FloatingPointError(
                f"refusing to write a checkpoint at step {self.step}: the model's {', '.join(bad[:8])} hold non-finite values; "
                f"lower the learning rate (--set train.lr=...) or set train.grad_clip; {self._last_checkpoint()}"
            )

    def save(self, ranks: list[dict[str, Any]] | None = None) -> None:
        """Write a checkpoint generation (weights and training state, verified by checksums in
        ``checkpoint.json``) and keep the previous one. With several processes every process calls
        this; rank 0 writes, with every process's `_rank_states` (``ranks`` if already gathered)."""
        self.read_pending()
        self._check_parameters_finite()
        self._write_checkpoint(ranks)

    def _write_checkpoint(self, ranks: list[dict[str, Any]] | None) -> None:
        """`save` once the weights are known to be finite."""
        if self.dist.active and ranks is None:
            ranks = self._rank_states()
        if self.dist.is_main:
            state = self.state_dict()
            if self.dist.active:
                state.update(world_size=self.dist.world_size, ranks=ranks)
            blobs = {checkpoint.WEIGHTS: checkpoint.weights_to_bytes(self.model), checkpoint.STATE: checkpoint.state_to_bytes(state)}
            self.generation = checkpoint.commit_generation(self.run_dir, blobs, self.step, state["metrics_bytes"], self.generation)
        self.saved_step = self.step

    def resume(self) -> bool:
        """Restore the newest usable checkpoint so training continues exactly where it stopped;
        False (and nothing restored) when the run has no checkpoint yet. With several processes,
        rank 0 reads the checkpoint and broadcasts it."""
        state, generation = None, None
        if self.dist.is_main:
            for name in checkpoint.remove_stale_temporaries(self.run_dir):
                _say(f"removed {name}, a temporary file left by a killed writer")
            generation, problems = checkpoint.load_latest_generation(self.run_dir)
            for problem in problems:
                _say(f"{problem}; using the previous checkpoint")
            if generation is None:
                dropped = checkpoint.truncate_metrics(self.run_dir, 0)
                _say(f"{self.run_dir} has no checkpoint yet: training starts from step 0" + (" (metrics.jsonl cleared)" if dropped > 0 else ""))
            else:
                checkpoint.load_weights_bytes(self.run_dir / generation.files[checkpoint.WEIGHTS]["path"], generation.data[checkpoint.WEIGHTS], self.model)
                state = checkpoint.load_state_bytes(self.run_dir / generation.files[checkpoint.STATE]["path"], generation.data[checkpoint.STATE])
        if self.dist.active:
            state = self.dist.broadcast_object(state)
            if state is not None:
                self.dist.broadcast_module(self.model)
        if state is None:
            return False
        self.load_state_dict(state)
        if generation is not None:
            generation.step, generation.data = self.step, {}
            self.generation = generation
            self._truncate_metrics(state.get("metrics_bytes"))
        self.saved_step = self.step
        return True

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (also the format written before parameter groups).

        Raises `WorldSizeMismatch` for a state written by a different number of processes."""
        trained = int(state.get("world_size", 1))
        if trained != self.dist.world_size:
            raise WorldSizeMismatch(self.run_dir, trained, self.dist.world_size)
        self.step = int(state["step"])
        if "optimizer" in state:  # written before parameter groups existed: one optimizer, one scheduler
            state["optimizers"], state["schedulers"] = {SINGLE_GROUP: state["optimizer"]}, {SINGLE_GROUP: state["scheduler"]}
        if set(state["optimizers"]) != set(self.optimizers):
            raise ValueError(f"{self.run_dir}/state.pt holds optimizers for {sorted(state['optimizers'])}, but the model has the groups {sorted(self.optimizers)}")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            self.schedulers[name].load_state_dict(state["schedulers"][name])
        if self.proximal_optimizer is not None and state.get("proximal_optimizer") is not None:
            self.proximal_optimizer.load_state_dict(state["proximal_optimizer"])
        self.stream.load_state_dict(state["stream"])
        torch.set_rng_state(state["torch_rng"])
        self.best_score = state["best_score"]
        self.train_cpu_seconds = float(state["train_cpu_seconds"])
        self.train_wall_seconds = float(state["train_wall_seconds"])
        self.epoch_sums = dict(state.get("epoch_sums", {}))
        self.epoch_count = int(state.get("epoch_count", 0))
        self.skipped_batches = int(state.get("skipped_batches", 0))
        self.consecutive_skips = int(state.get("consecutive_skips", 0))
        if self.averaged is not None:
            if state.get("weight_average") is not None:
                self.averaged.load_state_dict(state["weight_average"])
            else:
                self.averaged.restart_from(self.model)
                _say(f"{self.run_dir}: the checkpoint holds no weight average (train.ema_decay was not set): the average starts from its weights")
        mine = state["ranks"][self.dist.rank] if self.dist.active else state
        if self.dist.active:  # this process's own RNG, running sums and timers
            torch.set_rng_state(mine["torch_rng"])
            self.epoch_sums = dict(mine["epoch_sums"])
            self.epoch_count = int(mine["epoch_count"])
            self.train_cpu_seconds = float(mine["train_cpu_seconds"])
            self.train_wall_seconds = float(mine["train_wall_seconds"])
        device = torch.device(self.config.device)
        if device.type == "cuda" and mine.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(mine["cuda_rng"], device)

    def _truncate_metrics(self, length: int | None) -> None:
        """Drop the metric records written after the checkpoint (by a run killed after it)."""
        if length is None:  # a checkpoint from before lengths were recorded: keep records up to its step
            records = [r for r in checkpoint.read_metrics(self.run_dir) if r["step"] <= self.step]
            checkpoint.atomic_write_bytes(self.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())
            return
        dropped = checkpoint.truncate_metrics(self.run_dir, length)
        if dropped < 0:
            _say(f"{self.run_dir / 'metrics.jsonl'} is {-dropped} bytes shorter than at the checkpoint: some records were lost")
