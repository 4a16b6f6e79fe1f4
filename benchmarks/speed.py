"""Training and evaluation speed beside the machine's matrix-multiply limit.

For each setting, full training steps of pogm's Trainer (forward, backward, the non-finite checks,
Adam; batches drawn by pogm's stream with dynamic binarisation) are timed after a warm-up, in
several windows; the median gives unlabelled examples per second. In the same run, the same
thread count and precision:

* ``work``: the floating-point work of one step, counted from the layer sizes (`pogm.flops`: the
  GEMMs the model's equations need, forward plus gradients; for factVAE and HALI, whose networks
  are many small per-group or per-level pieces, torch's FLOP counter over one step of the model);
* ``gemm_limit``: the time this machine takes to run exactly those GEMMs alone, back to back
  (``torch.mm`` into preallocated outputs): no model can do the step faster than this with the same
  matrix multiplies, so ``gemm_limit / step time`` is the fraction of the limit reached;
* ``peak``: the rate of one 2048^3 GEMM, the machine's matrix-multiply peak as PyTorch reaches it
  (``work / step time / peak`` is given too).

Settings (papers' sizes; 100 labelled + 100 unlabelled examples a step, MNIST-100):
  m2          M2 [784, 10, 50, [600, 600]] softplus (the public reference: ~1,560 unlabelled/s here)
  adgm, sdgm  n_a = n_z = 100, [500, 500] ReLU, one sample of a (public ADGM: ~840 unlabelled/s here)
  factvae     factVAE on CMU mocap (subject 07), Table 1's settings, batch 100
  hali        HALI on MNIST, z 64 + 32, [500, 500] kernels, batch 100 (generator and discriminator steps)
  iw-m2       `pogm eval --iw-samples 5000` for M2 on MNIST test images: images per second, and the
              time the 10,000 test images would take

    POGM_DATA=../shared/data python benchmarks/speed.py                 # all, 1 and 2 threads, fp32
    POGM_DATA=../shared/data python benchmarks/speed.py --settings m2 --threads 2 --precision fp32 bf16

Writes ``benchmarks/results/speed.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from pogm import flops
from pogm.reproduce.runs import machine

PUBLIC = {"m2": 1560, "adgm": 840}  # unlabelled examples per second of public PyTorch code on this machine (the issue)
SSL = {  # setting: (registered model, model settings)
    "m2": ("m2", {"hidden": [600, 600], "z_dim": 50, "activation": "softplus", "batch_norm": False}),
    "adgm": ("adgm", {"hidden": [500, 500], "a_dim": 100, "z_dim": 100, "a_samples": 1, "batch_norm": False}),
    "sdgm": ("sdgm", {"hidden": [500, 500], "a_dim": 100, "z_dim": 100, "a_samples": 1, "batch_norm": False}),
}
SETTINGS = [*SSL, "factvae", "hali", "iw-m2"]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def ssl_gemms(setting: str, model, labelled: int, unlabelled: int) -> list[flops.Gemm]:
    c = model.config
    if c.network != "mlp":  # pogm.flops lists fully connected layers only
        raise ValueError(f"{setting} with network={c.network!r}: pogm.flops counts the work of fully connected networks only; measure network=mlp")
    if setting == "m2":
        return flops.m2_step(c.x_dim, c.num_classes, c.z_dim, c.hidden, labelled, unlabelled)
    return flops.adgm_step(c.x_dim, c.num_classes, c.a_dim, c.z_dim, c.hidden, labelled, unlabelled, c.a_samples, skip=setting == "sdgm")


def make_trainer(model_name: str, overrides: dict, data, labelled_index, threads: int, precision: str, run_dir: Path, batch_size: int = 100, train_extra: dict | None = None):
    from pogm.data.streams import SemiSupervisedStream
    from pogm.runs import size_model
    from pogm.train.trainer import TrainConfig, Trainer

    torch.manual_seed(0)
    model = size_model(model_name, data, 0 if labelled_index is None else len(labelled_index), overrides)
    config = TrainConfig(batch_size=batch_size, labelled_batch_size=100, threads=threads, precision=precision, progress=False, **(train_extra or {}))
    stream = SemiSupervisedStream(data.train, labelled_index, batch_size=batch_size if type(model).uses_unlabelled else 0, labelled_batch_size=100, seed=0)
    return Trainer(model, stream, config, run_dir)


def paired_windows(step, limit: flops.GemmSet, warmup: int, windows: int, window_seconds: float) -> dict:
    """Alternate ``windows`` windows of ``step`` calls with timings of the GEMM limit, so that both
    see the same machine (a shared virtual machine's speed drifts by 10-20% within minutes)."""
    for _ in range(warmup):
        step()
    limit.run()
    step_seconds, limit_seconds = [], []
    for _ in range(windows):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < window_seconds:
            step()
            calls += 1
        step_seconds.append((time.perf_counter() - start) / calls)
        limit_seconds.append(limit.seconds(min(1.0, window_seconds / 3)))
    ratios = [lim / st for lim, st in zip(limit_seconds, step_seconds)]
    return {"step": statistics.median(step_seconds), "steps": step_seconds, "limit": statistics.median(limit_seconds), "fraction": statistics.median(ratios)}


def measure_training(setting: str, threads: int, precision: str, args, sources: dict, run_dir: Path) -> dict:
    from pogm.data import balanced_label_split

    if setting in SSL:
        data = sources["mnist"]
        labelled_index = balanced_label_split(data.train.y, 10, 10, seed=0)
        model_name, overrides = SSL[setting]
        trainer = make_trainer(model_name, overrides, data, labelled_index, threads, precision, run_dir, train_extra={"compile": args.compile})
        gemms = ssl_gemms(setting, trainer.model, 100, 100)
        work, shapes = flops.training_flops(gemms), [s for g in gemms for s in g.training_shapes()]
        unlabelled = 100
    else:
        from pogm.models.factvae.paper_table import FACTVAE_MODEL_SETTINGS, FACTVAE_TRAIN_SETTINGS
        from pogm.models.hali.paper_table import GAN_TRAIN

        if setting == "factvae":
            data, model_name, overrides, extra = sources["mocap"], "factvae", FACTVAE_MODEL_SETTINGS, {"kl_warmup_steps": FACTVAE_TRAIN_SETTINGS["kl_warmup_steps"]}
        else:
            data, model_name, overrides, extra = sources["mnist"], "hali", {"architecture": "mlp"}, {"lr": GAN_TRAIN["lr"], "adam_betas": tuple(GAN_TRAIN["adam_betas"])}
        trainer = make_trainer(model_name, overrides, data, None, threads, precision, run_dir, train_extra={**extra, "compile": args.compile})
        counter = FlopCounterMode(display=False)
        batch = trainer.stream.next_batch()
        with counter:
            trainer.train_step(batch)
        work = counter.get_total_flops()
        shapes = recorded_gemm_shapes(trainer, trainer.stream.next_batch())
        unlabelled = len(batch)
    torch.set_num_threads(threads)

    def step() -> None:
        trainer.train_step(trainer.stream.next_batch())

    timing = paired_windows(step, flops.GemmSet(shapes, DTYPES[precision]), args.warmup, args.windows, args.window_seconds)
    return row(setting, threads, precision, timing, work, unlabelled, "unlabelled_per_second")


def recorded_gemm_shapes(trainer, batch) -> list[tuple[int, int, int]]:
    """The (m, k, n) of every matrix multiply in one training step, recorded by dispatch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    shapes: list[tuple[int, int, int]] = []
    ops = {torch.ops.aten.mm.default: (0, 1), torch.ops.aten.addmm.default: (1, 2), torch.ops.aten.bmm.default: (0, 1)}

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in ops:
                i, j = ops[func]
                a, b = args[i], args[j]
                batch = a.shape[0] if a.dim() == 3 else 1
                m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
                shapes.extend([(m, k, n)] * batch)
            return func(*args, **(kwargs or {}))

    with Record():
        trainer.train_step(batch)
    return shapes


def measure_iw(threads: int, precision: str, args, sources: dict) -> dict:
    """M2's importance-weighted log-likelihood with 5000 samples (what `pogm eval --iw-samples 5000` runs)."""
    from pogm.data.streams import iterate_batches
    from pogm.evaluate.metrics import evaluation_view
    from pogm.runs import size_model

    torch.set_num_threads(threads)
    data = sources["mnist"]
    model_name, overrides = SSL["m2"]
    torch.manual_seed(0)
    model = size_model(model_name, data, 100, overrides).eval()
    test = evaluation_view(data.test)
    images = args.iw_images
    batch = next(iterate_batches(test, images))
    samples = 5000
    c = model.config
    gemms = flops.m2_log_likelihood(c.x_dim, c.num_classes, c.z_dim, c.hidden, images, samples)
    work, shapes = flops.forward_flops(gemms), [(g.rows, g.inputs, g.outputs) for g in gemms]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)

    def step() -> None:
        with torch.no_grad(), autocast:
            model.log_likelihood(batch, samples)

    timing = paired_windows(step, flops.GemmSet(shapes, DTYPES[precision]), 1, args.windows, args.window_seconds)
    out = row("iw-m2", threads, precision, timing, work, images, "images_per_second")
    out["test_set_minutes"] = round(10000 / out["images_per_second"] / 60, 1)
    return out


def row(setting: str, threads: int, precision: str, timing: dict, work: int, examples: int, unit: str) -> dict:
    peak = flops.peak_gemm_rate(dtype=DTYPES[precision])
    seconds = timing["step"]
    return {
        "setting": setting,
        "threads": threads,
        "precision": precision,
        unit: round(examples / seconds, 1),
        "step_ms": round(1000 * seconds, 2),
        "window_step_ms": [round(1000 * w, 2) for w in timing["steps"]],
        "gflop_per_step": round(work / 1e9, 3),
        "achieved_gflops": round(work / seconds / 1e9, 1),
        "gemm_limit_ms": round(1000 * timing["limit"], 2),
        "fraction_of_gemm_limit": round(timing["fraction"], 3),
        "peak_gflops": round(peak / 1e9, 1),
        "fraction_of_peak": round(work / seconds / peak, 3),
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| setting | threads | precision | examples/s | step ms | GFLOP/step | GFLOP/s | GEMM-only ms | of GEMM limit | of peak | public code |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rate = r.get("unlabelled_per_second", r.get("images_per_second"))
        public = PUBLIC.get(r["setting"])
        lines.append(
            f"| {r['setting']}{' (compiled)' if r.get('compiled') else ''} | {r['threads']} | {r['precision']} | {rate:,.0f} | {r['step_ms']} | {r['gflop_per_step']} | {r['achieved_gflops']} | "
            f"{r['gemm_limit_ms']} | {100 * r['fraction_of_gemm_limit']:.0f}% | {100 * r['fraction_of_peak']:.0f}% | {f'{public:,}/s' if public else ''} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=SETTINGS, choices=SETTINGS)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=list(DTYPES))
    parser.add_argument("--warmup", type=int, default=10, help="steps before timing")
    parser.add_argument("--windows", type=int, default=5, help="timed windows; the median is reported")
    parser.add_argument("--window-seconds", type=float, default=3.0)
    parser.add_argument("--iw-images", type=int, default=20, help="test images per timed log-likelihood call (5000 samples each)")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model's loss")
    parser.add_argument("--out", default="benchmarks/results/speed.json")
    parser.add_argument("--append", action="store_true", help="keep the rows of --out for settings not measured now")
    args = parser.parse_args(argv)

    from pogm.data import load_source

    sources = {"mnist": load_source("mnist")}
    if "factvae" in args.settings:
        sources["mocap"] = load_source("mocap")
    torch.set_flush_denormal(True)  # as the Trainer does
    rows = []
    with tempfile.TemporaryDirectory(prefix="pogm-speed-") as tmp:
        for setting in args.settings:
            for threads in args.threads:
                for precision in args.precision:
                    if setting == "iw-m2":
                        r = measure_iw(threads, precision, args, sources)
                    else:
                        r = measure_training(setting, threads, precision, args, sources, Path(tmp) / f"{setting}-{threads}-{precision}")
                        r["compiled"] = args.compile
                    print(json.dumps(r), flush=True)
                    rows.append(r)
    if args.append and Path(args.out).is_file():  # keep the earlier rows of other settings
        key = lambda r: (r["setting"], r["threads"], r["precision"], r.get("compiled", False))  # noqa: E731
        new = {key(r) for r in rows}
        rows = [r for r in json.loads(Path(args.out).read_text())["rows"] if key(r) not in new] + rows
        rows.sort(key=lambda r: (SETTINGS.index(r["setting"]), r.get("compiled", False), r["precision"], r["threads"]))
    table = markdown(rows)
    report = {
        "benchmark": "speed",
        "machine": machine(),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "settings": {k: v[1] for k, v in SSL.items()},
        "public_reference_unlabelled_per_second": PUBLIC,
        "rows": rows,
        "table": table,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
