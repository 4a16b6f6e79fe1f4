"""One prepared check on a CUDA GPU: training throughput of M2, ADGM and SDGM, and the ADGM and
SDGM trained at the paper's settings for as long as a budget allows.

    python benchmarks/gpu_check.py --out gpu_check.json               # on a GPU (gpu_check.sh runs it)
    python benchmarks/gpu_check.py --device cpu --tiny --out x.json    # a dry run of the script on a CPU

Throughput: MNIST with 100 labels, the model's CPU recipe (the M2's, the ADGM's and the SDGM's
networks) and the paper recipes of the ADGM and SDGM (5 samples of a, no batch normalisation),
at 100 + 100 examples a step and at a larger step (``--large-batch`` unlabelled + 100 labelled);
each setting steps ``--warmup`` times, then ``--steps`` timed steps between two device
synchronisations. Both the sync-free step (``train.sync_free``, the default on CUDA) and the
synchronous one are timed, and ``train.compile`` for the M2 and the ADGM.

Paper runs: `pogm.train` with the recipes adgm-mnist100 and sdgm-mnist100 (Maaløe et al. 2016:
Adam 3e-4, 100 + 100 a step, 5 samples of a, 1000 epochs of 500 steps) on the device, for the
steps that fit in ``--train-seconds`` at the measured rate, evaluating every ``--eval-every``
epochs; the JSON holds the test error at the best validation error, the epochs reached and the
projected time of the paper's 1000 epochs.

Semi-supervised HALI (section ``hali``, not in the default list: ``--sections hali``): the
hali-mnist100 table's two HALI settings on Table 4's spatial network (Belghazi et al. 2018,
section 7.2 as written, and with the mean-teacher consistency and entropy costs on the unlabelled
rows), then the table's two convolutional rows (the costs on stride-2 convolutions, z1 a vector;
without and with virtual adversarial training, from one start), grey-level MNIST with 100 labels, Adam 2e-4 with betas (0.5, 0.999), each for the steps that
fit in ``--hali-seconds`` at its measured rate; the JSON holds the test errors out of 10,000 at the
lowest validation error (the paper: 73).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import torch

import pogm
from pogm.checkpoint import read_metrics
from pogm.recipes import load_recipe
from pogm.runs import choose_labels, load_data, size_model
from pogm.train.config import TrainConfig
from pogm.train.launch import _make_trainer
from pogm.reproduce.runs import selected_record
from pogm.models.hali.paper_table import GAN_TRAIN, HALI, HALI_SSL_CONV_UNLABELLED_COSTS, HALI_SSL_CONV_VAT, HALI_SSL_UNLABELLED_COSTS

PAPER_EPOCHS = 1000
STEPS_PER_EPOCH = 500  # 50,000 unlabelled images, 100 a step


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed_steps(trainer, steps: int, device: str) -> float:
    """Wall seconds of ``steps`` training steps, up to the device finishing them."""
    start = time.perf_counter()
    for _ in range(steps):
        trainer._timed_step()
    trainer.read_pending()
    synchronize(device)
    return time.perf_counter() - start


def throughput(splits, labelled_index, name: str, recipe: str, batch: int, device: str, sync_free: bool, compile: bool, steps: int, warmup: int, tiny: bool, compile_mode: str = "default") -> dict:
    """Steps per second of one setting, timed between two synchronisations after a warm-up."""
    model_options = dict(load_recipe(recipe)["model"])
    if tiny:
        model_options.update(hidden=[16], z_dim=4, **({"a_dim": 4} if "a_dim" in model_options else {}))
    torch.manual_seed(0)
    net = size_model(name, splits, len(labelled_index), model_options)
    config = TrainConfig(device=device, batch_size=batch, labelled_batch_size=100, lr=3e-4, sync_free=sync_free, compile=compile, compile_mode=compile_mode, progress=False, sync_every=100, epochs=10**6)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = _make_trainer(net, splits, labelled_index, config, 0, Path(run_dir))
        warm = timed_steps(trainer, warmup, device)
        seconds = timed_steps(trainer, steps, device)
    return {
        "model": name, "recipe": recipe, "unlabelled_per_step": batch, "labelled_per_step": 100, "sync_free": trainer.sync_free, "compile": compile,
        "step": f"compiled ({compile_mode})" if compile else ("default" if sync_free is None else "synchronous"),
        "steps_per_second": round(steps / seconds, 1), "unlabelled_per_second": round(steps * batch / seconds), "ms_per_step": round(1000 * seconds / steps, 3),
        "warmup_seconds": round(warm, 2), "timed_steps": steps,
    }


def paper_run(name: str, recipe: str, device: str, seconds: float, rate: float, eval_every: int, runs: Path, tiny: bool, compile_mode: str | None = None) -> dict:
    """Train ``name`` with its paper recipe for about ``seconds`` of training at ``rate`` steps/s."""
    steps = max(STEPS_PER_EPOCH if not tiny else 20, int(seconds * rate))
    model = {"hidden": [16], "z_dim": 4, "a_dim": 4, "classify_a_samples": 2} if tiny else {}
    train = {"device": device, "max_steps": steps, "eval_every": eval_every, "progress": False}
    if compile_mode is not None:
        train.update(compile=True, compile_mode=compile_mode)
    if tiny:
        train.update(eval_every=1)
    start = time.perf_counter()
    run = pogm.train(name, data="mnist", labels=10, recipe=recipe, out=runs / name, seed=0, overrides={"model": model, "train": train}, progress=False)
    wall = time.perf_counter() - start
    records = read_metrics(run.dir)
    best, last = selected_record(records), records[-1]
    # steady state: between the first and the last evaluation (compilation and warm-up come before)
    first = records[0] if len(records) > 1 else {"step": 0, "train_wall_seconds": 0.0}
    train_seconds_per_step = (last["train_wall_seconds"] - first["train_wall_seconds"]) / (last["step"] - first["step"])
    evaluation_seconds = max(wall - last["train_wall_seconds"], 0.0)
    return {
        "model": name, "recipe": recipe, "compile_mode": compile_mode, "steps": last["step"], "epochs": round(last["step"] / STEPS_PER_EPOCH, 2),
        "test_error": best["test_error"], "valid_error": best["valid_error"], "selected_step": best["step"], "last_test_error": last["test_error"],
        "train_wall_seconds": last["train_wall_seconds"], "total_wall_seconds": round(wall, 1), "evaluations": len(records),
        "projected_paper_run_hours": round((PAPER_EPOCHS * STEPS_PER_EPOCH * train_seconds_per_step + evaluation_seconds / len(records) * PAPER_EPOCHS / eval_every) / 3600, 2),
        "curve": [{k: r[k] for k in ("step", "valid_error", "test_error", "train_wall_seconds")} for r in records],
    }


HALI_SETTINGS = {  # the hali-mnist100 table's two settings on Table 4's spatial network, and its convolutional rows
    "section 7.2": {"architecture": "spatial"},
    "section 7.2 + mean-teacher consistency and entropy": {**HALI_SSL_UNLABELLED_COSTS, "architecture": "spatial"},
    "convolutional (vector z1) + mean-teacher consistency and entropy": HALI_SSL_CONV_UNLABELLED_COSTS,
    # the table's best row on a CPU (one start here; the table keeps the better of two)
    "convolutional (vector z1) + mean-teacher consistency, entropy and virtual adversarial training": HALI_SSL_CONV_VAT,
}
HALI_TINY = {  # a dry run's networks, per architecture
    "spatial": {"spatial_width": 4, "z1_shape": [2, 14, 14], "z_dims": [4, 4], "discriminator_joint_hidden": [16]},
    "dcgan": {"channels": [4, 8], "z_dims": [4, 4], "hidden": [16], "discriminator_hidden": [16], "discriminator_joint_hidden": [16]},
}


def hali_rate(splits, labelled_index, model_options: dict, device: str, steps: int, warmup: int) -> float:
    """Training steps per second of semi-supervised HALI with ``model_options`` (100 + 100 a step)."""
    torch.manual_seed(0)
    net = size_model("hali-ssl", splits, len(labelled_index), model_options)
    config = TrainConfig(device=device, batch_size=100, labelled_batch_size=100, **GAN_TRAIN, progress=False, epochs=10**6)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = _make_trainer(net, splits, labelled_index, config, 0, Path(run_dir))
        timed_steps(trainer, warmup, device)
        return steps / timed_steps(trainer, steps, device)


def hali_run(name: str, model_options: dict, device: str, seconds: float, rate: float, eval_every_steps: int, runs: Path, tiny: bool) -> dict:
    """Train semi-supervised HALI for about ``seconds`` at ``rate`` steps/s; its test errors at the lowest validation error."""
    steps = 20 if tiny else max(eval_every_steps, int(seconds * rate))
    train = {"device": device, "max_steps": steps, "eval_every_steps": 10 if tiny else eval_every_steps, "progress": False, **GAN_TRAIN}
    start = time.perf_counter()
    run = pogm.train("hali-ssl", data="mnist", labels=10, out=runs / re.sub(r"[^a-z0-9.]+", "-", name), seed=0, overrides={"model": model_options, "train": train}, progress=False)
    records = read_metrics(run.dir)
    best, last = selected_record(records), records[-1]
    return {
        "setting": name, "model_options": model_options, "steps": last["step"], "steps_per_second": round(rate, 1),
        "test_errors": round(best["test_error"] * 10000), "valid_error": best["valid_error"], "selected_step": best["step"],
        "last_test_errors": round(last["test_error"] * 10000), "paper_test_errors": HALI["hali"], "total_wall_seconds": round(time.perf_counter() - start, 1),
        "curve": [{k: r[k] for k in ("step", "valid_error", "test_error", "train_wall_seconds")} for r in records],
    }


def launch_overhead(device: str, launches: int = 2000) -> dict:
    """Microseconds per kernel launch, one by one and replayed from a CUDA graph: where launching
    costs more than a small kernel runs, a training step of small networks is bound by its launches."""
    x = torch.zeros(1, device=device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(launches):
        x.add_(1)
    synchronize(device)
    eager = (time.perf_counter() - start) / launches * 1e6
    row = {"launches": launches, "eager_us_per_launch": round(eager, 2)}
    if device.startswith("cuda"):
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            x.add_(1)
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            for _ in range(100):
                x.add_(1)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(launches // 100):
            graph.replay()
        synchronize(device)
        row["graph_us_per_kernel"] = round((time.perf_counter() - start) / launches * 1e6, 2)
    return row


def host_profile(splits, labelled_index, device: str, steps: int, tiny: bool) -> list[dict]:
    """The functions where the host spends a sync-free M2 step's time (cProfile, by own time)."""
    import cProfile
    import pstats

    model_options = dict(load_recipe("m2-mnist100-cpu")["model"])
    if tiny:
        model_options.update(hidden=[16], z_dim=4)
    net = size_model("m2", splits, len(labelled_index), model_options)
    config = TrainConfig(device=device, batch_size=100, labelled_batch_size=100, progress=False, epochs=10**6)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = _make_trainer(net, splits, labelled_index, config, 0, Path(run_dir))
        for _ in range(10):
            trainer._timed_step()
        trainer.read_pending()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(steps):
            trainer._timed_step()
        trainer.read_pending()
        synchronize(device)
        profile.disable()
    stats = pstats.Stats(profile).stats
    rows = [{"function": f"{Path(f).name}:{line}({name})", "calls_per_step": round(calls / steps, 1), "own_ms_per_step": round(1000 * own / steps, 3), "cumulative_ms_per_step": round(1000 * cumulative / steps, 3)}
            for (f, line, name), (_, calls, own, cumulative, _) in stats.items()]
    return sorted(rows, key=lambda r: -r["own_ms_per_step"])[:20]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--large-batch", type=int, default=1000)
    parser.add_argument("--train-seconds", type=float, default=80.0, help="training time of each paper run")
    parser.add_argument("--eval-every", type=int, default=10, help="epochs between evaluations of the paper runs")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and few steps: a dry run of the script")
    parser.add_argument("--sections", nargs="+", default=["throughput", "paper", "compile"], choices=["throughput", "paper", "compile", "overhead", "hali"])
    parser.add_argument("--paper-compile-mode", default="reduce-overhead", help="torch.compile mode of the paper runs ('none': eager); reduce-overhead replays CUDA graphs")
    parser.add_argument("--paper-rate", type=float, default=None, help="steps per second of the paper runs (default: measured in the throughput section)")
    parser.add_argument("--hali-seconds", type=float, default=90.0, help="training time of each semi-supervised HALI run (section hali)")
    parser.add_argument("--hali-eval-every", type=int, default=500, help="steps between evaluations of the HALI runs")
    parser.add_argument("--compile-modes", nargs="+", default=["default"], help="torch.compile modes of the compile section")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: PyTorch sees no CUDA GPU here; run it on one, or try it with --device cpu --tiny")

    report = {"benchmark": "gpu_check", "device": device_name(args.device), "torch": torch.__version__, "sections": args.sections, "throughput": [], "paper_runs": [], "hali_runs": []}
    splits = load_data("mnist", {"binarize": True})
    labelled_index = choose_labels(splits, 10, 0, True)

    def save() -> None:  # after every measurement: a run cut short keeps what it measured
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))

    def measure(**setting) -> dict:
        row = throughput(splits, labelled_index, device=args.device, steps=args.steps, warmup=args.warmup, tiny=args.tiny, **setting)
        report["throughput"].append(row)
        save()
        print(json.dumps({k: row[k] for k in ("model", "recipe", "unlabelled_per_step", "step", "sync_free", "ms_per_step", "unlabelled_per_second")}), flush=True)
        return row

    for name, recipe in (("m2", "m2-mnist100-cpu"), ("adgm", "adgm-mnist100-cpu"), ("sdgm", "sdgm-mnist100-cpu"), ("adgm", "adgm-mnist100"), ("sdgm", "sdgm-mnist100")):
        if "throughput" not in args.sections:
            break
        for batch in (100, args.large_batch):
            measure(name=name, recipe=recipe, batch=batch, sync_free=None, compile=False)
        measure(name=name, recipe=recipe, batch=100, sync_free=False, compile=False)
    if "overhead" in args.sections:
        report["launch_overhead"] = launch_overhead(args.device)
        print(json.dumps(report["launch_overhead"]), flush=True)
        report["host_profile_m2"] = host_profile(splits, labelled_index, args.device, 5 if args.tiny else 100, args.tiny)
        for row in report["host_profile_m2"][:12]:
            print(json.dumps(row), flush=True)
        save()

    with tempfile.TemporaryDirectory() as runs:
        for name in ("adgm", "sdgm") if "paper" in args.sections else ():
            mode = None if args.paper_compile_mode == "none" else args.paper_compile_mode
            rate = args.paper_rate or next(r["steps_per_second"] for r in report["throughput"] if r["recipe"] == f"{name}-mnist100" and r["unlabelled_per_step"] == 100 and r["step"] == "default")
            row = paper_run(name, f"{name}-mnist100", args.device, args.train_seconds, rate, args.eval_every, Path(runs), args.tiny, mode)
            report["paper_runs"].append(row)
            save()
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)

    if "hali" in args.sections:
        grey = load_data("mnist", {"binarize": False})  # HALI's images: grey levels (a sigmoid image)
        with tempfile.TemporaryDirectory() as runs:
            for name, options in HALI_SETTINGS.items():
                options = {**options, **(HALI_TINY[options["architecture"]] if args.tiny else {})}
                rate = hali_rate(grey, labelled_index, options, args.device, 5 if args.tiny else 50, 2 if args.tiny else 10)
                row = hali_run(name, options, args.device, args.hali_seconds, rate, args.hali_eval_every, Path(runs), args.tiny)
                report["hali_runs"].append(row)
                save()
                print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)

    if "compile" in args.sections and not args.no_compile:  # last: compilation takes long, and the rest is saved by then
        for mode in args.compile_modes:
            for name, recipe in (("m2", "m2-mnist100-cpu"), ("adgm", "adgm-mnist100"), ("sdgm", "sdgm-mnist100"))[: 3 if mode != "default" else 2]:
                measure(name=name, recipe=recipe, batch=100, sync_free=None, compile=True, compile_mode=mode)
    save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
