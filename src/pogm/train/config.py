"""The training settings (`TrainConfig`): what a run's ``train:`` section and ``--set train.*`` set."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    batch_size: int = 100  # unlabelled examples per step
    labelled_batch_size: int = 100  # labelled examples per step
    shuffle_window: int = 0  # 0 = a full permutation per epoch; else windows of this many consecutive rows (data on disk)
    lr: float = 3e-4
    lr_decay: float = 1.0  # multiply the learning rate by this every `lr_decay_every` epochs
    lr_decay_every: int = 1
    lr_min: float = 0.0  # the decay stops at this learning rate (the ADGM recipe: 0.75 every 200 epochs, down to 3e-5)
    optimizer: str = "adam"  # "adam", or "sgd" (with `momentum`; the Hybrid VAE paper's: lr 0.01, momentum 0.9)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0  # SGD's momentum (heavy ball, as torch.optim.SGD)
    # Weight decay over every trained parameter: Adam's is decoupled (AdamW, Loshchilov & Hutter 2019:
    # each step also multiplies the weights by 1 - lr * weight_decay), SGD's adds weight_decay * w to
    # the gradient. 0 = none, as in every paper here; a regulariser of ours, not of any paper's model.
    weight_decay: float = 0.0
    kl_warmup_steps: int = 0  # KL weight rises linearly from 0 to 1 over these optimizer steps
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    # Evaluate, select and save an exponential moving average of the weights with this decay
    # (pogm.train.averaging; e.g. 0.999); None = the weights that train.
    ema_decay: float | None = None
    eval_every: int = 1  # epochs between evaluations and checkpoints
    # Optimizer steps between evaluations and checkpoints, wherever the epoch stands (in place of
    # eval_every): runs on data sets of very different sizes are then selected as often.
    eval_every_steps: int | None = None
    eval_batch_size: int = 1000
    eval_elbo_limit: int | None = 2000  # examples of the validation split used for the ELBO
    device: str = "cpu"
    precision: str = "fp32"  # "bf16": autocast matmuls to bfloat16 (fp32 accumulation and losses)
    threads: int | None = None  # torch.set_num_threads; None = PyTorch's default
    cpu_budget_seconds: float | None = None  # stop when training (not evaluation) has used this much CPU time
    # Flush denormal floats (|x| < 1.2e-38) to zero on the CPU. Adam's second moments and saturated
    # sigmoid gradients drift into that range during long runs and then slow every step about 4x
    # (measured on M2/MNIST after 19 epochs: 232 ms per step with denormals, 58 ms without).
    flush_denormal: bool = True
    # torch.compile the model's loss (TorchInductor). Off by default: on this 2-core CPU it costs
    # about 45 s of compilation at start and gave no measurable gain for M2 at the paper's sizes
    # (benchmarks/speed.py --compile); it may pay off on GPUs or for elementwise-heavy models.
    compile: bool = False
    # torch.compile's mode: "default", or "reduce-overhead" (CUDA graphs: one launch replays the
    # compiled loss and its backward, for GPUs where launching kernels costs more than running them).
    compile_mode: str = "default"
    progress: bool = True
    # The sync-free step (pogm.train.sync_free): the host never waits for the device inside a step;
    # loss terms and finiteness flags are read every sync_every steps. None = on for CUDA, off on the
    # CPU (where it gains nothing); it needs one parameter group, fused Adam and one process.
    sync_free: bool | None = None
    sync_every: int = 100
    # Models with several parameter groups (adversarial ones; see the module docstring).
    schedule: str = "simultaneous"  # or "alternating": discriminator_steps D updates, then one of the rest
    discriminator_steps: int = 1  # D updates per generator update in the alternating schedule
    group_lr: dict[str, float] | None = None  # learning rates per parameter group, e.g. {discriminator: 2e-4}
    group_optimizer: dict[str, str] | None = None  # optimizers per parameter group, e.g. {discriminator: sgd}
    # A batch whose loss or gradient is not finite makes no update; then "stop" the run, or "skip"
    # the batch (and stop anyway after max_nonfinite_skips bad batches in a row).
    on_nonfinite: str = "stop"
    max_nonfinite_skips: int = 10


SCHEDULES = ("simultaneous", "alternating")
OPTIMIZERS = ("adam", "sgd")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
NONFINITE_POLICIES = ("stop", "skip")
