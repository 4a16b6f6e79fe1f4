"""Why HALI's spatial network (Table 4 of Belghazi et al. 2018, scaled to MNIST) collapses in short
CPU runs, and which setting keeps it alive.

Symptom (docs/hali.md): trained on grey-level MNIST with Adam 2e-4, betas (0.5, 0.999), the
discriminator wins by step 500-700 and the decoder chain z_2 -> z_1 -> x gives one image whatever
z_2 is. Each hypothesis of ``HYPOTHESES`` trains the real `HierarchicalALI` (``architecture=spatial``,
unsupervised) with the Trainer's parts (100 images a step, one Adam per parameter group, each on
its own loss) for ``--seconds`` CPU seconds on one thread. Every ``--eval-every`` steps it records:

* the two players' losses and D's accuracies, averaged over the steps since the last record;
* ``sample_spread``: the per-pixel standard deviation over 500 samples of the decoder chain (eval
  mode), divided by that of 500 validation images: near 1 for a generator that varies as the data
  do, near 0 for one image whatever z_2;
* ``l1`` / ``l2``: the mean Euclidean distance between 500 validation images and their
  reconstructions through level 1 and level 2 (section 3.2), and ``l2_spread``, the spread of the
  level-2 reconstructions as above (a collapsed chain gives every image the same one);
* ``d_x_zhat``, ``d_xtilde_z``, ``d_x_z``, ``d_xtilde_zhat``: D's mean probability that a pair is the
  encoder's, for the encoder's pairs, the decoder's, and the two crossings (real images with the
  decoder's latents, generated images with their encodings): which input D reads.

Every run is cached as JSON in ``benchmarks/runs-hali-spatial/`` (git-ignored), with a PNG of its
last samples and reconstructions and its last weights (``.pt``); the summary goes to
benchmarks/results/hali_spatial.json.

    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/hali_spatial.py --seconds 360 --only paper ali-adam
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import adversarial_setup, group_step, machine

from pogm.models.hali.paper_table import GAN_TRAIN

# name: (model options over the defaults, train options over GAN_TRAIN, what it tests)
HYPOTHESES = {
    "paper": ({}, {}, "the defaults: Table 4 scaled to MNIST, section 4's regularisers, Adam 2e-4, betas (0.5, 0.999)"),
    "ali-adam": ({}, {"lr": 1e-4, "adam_betas": [0.5, 1e-3]}, "ALI's optimiser (Dumoulin et al. 2016): Adam 1e-4, betas (0.5, 1e-3)"),
    "d-lr-x0.2": ({}, {"group_lr": {"discriminator": 4e-5}}, "the discriminator's learning rate 5 times lower"),
    "dropout-every-layer": ({"spatial_dropout_every": 1, "spatial_retention": 0.5}, {}, "dropout 0.5 after every layer of D (Table 4's column read as drop probabilities)"),
    "latent-noise": ({"spatial_latent_noise": True}, {}, "noise of 0.2 on D's latent inputs too"),
    "z1-4ch": ({"z1_shape": [4, 14, 14]}, {}, "z_1 of 4 x 14 x 14 (784 values, as many as the pixels) instead of 16 x 14 x 14"),
    "no-bn": ({"batch_norm": False}, {}, "no batch normalisation in the encoder's and decoder's networks"),
    "latent-std-0.1": ({"latent_init_std": 0.1}, {}, "every latent kernel's standard deviation starts near 0.1 instead of 1 (z_1's 3,136 values start nearly noise-free)"),
}


def spread(x):
    """Mean over pixels of the standard deviation over rows ``[N, D] -> float``."""
    return float(x.std(0).mean())


def diagnose_one(name: str, seconds: float, eval_every: int, seed: int, runs: Path) -> dict:
    """Train hypothesis ``name`` for ``seconds`` CPU seconds; its record (cached in ``runs``)."""
    import torch

    from pogm.evaluate.metrics import evaluation_view

    path = runs / f"{name}-{seconds:g}s-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    model_options, train_options, meaning = HYPOTHESES[name]
    splits, net, _, stream, groups, optimizers, _ = adversarial_setup(
        "hali", {"architecture": "spatial", **model_options}, {**GAN_TRAIN, **train_options}, seed, labels_per_class=None
    )
    valid = evaluation_view(splits.valid).x["x"].reshape(len(splits.valid), -1)[:500]  # [500, 784]
    data_spread = spread(valid)
    curve, step, cpu, window, nonfinite_at = [], 0, 0.0, [], None

    @torch.no_grad()
    def evaluate():
        """Record the curve's next row; the samples and reconstructions ``[500, 784]`` drawn for it."""
        net.eval()
        torch.manual_seed(seed + 1)
        logits_tilde, z = net.prior_chain(500)  # decoder's joint: x~ [500, 784], [z_1, z_2]
        samples = torch.sigmoid(logits_tilde)  # [500, 784]
        z_hat = net.encode_chain(valid)  # encoder's joint on the validation images
        d_real = {  # D's mean probability of "encoder's joint" for each pairing (eval mode: no dropout, no noise)
            "d_x_zhat": net.discriminator(valid, z_hat)[0].sigmoid().mean(),
            "d_xtilde_z": net.discriminator(samples, z)[0].sigmoid().mean(),
            "d_x_z": net.discriminator(valid, z)[0].sigmoid().mean(),  # real images, the decoder's latents
            "d_xtilde_zhat": net.discriminator(samples, net.encode_chain(samples))[0].sigmoid().mean(),  # generated images, their encodings
        }
        l1, l2 = net.reconstruct_flat(valid, 1), net.reconstruct_flat(valid, 2)  # [500, 784] each
        net.train()
        mean = {k: sum(w[k] for w in window) / max(len(window), 1) for k in (window[0] if window else {})}
        curve.append({
            "step": step, "train_cpu_seconds": round(cpu, 1), **{k: round(v, 4) for k, v in mean.items()},
            "sample_spread": round(spread(samples) / data_spread, 4),
            "l1": round(float((valid - l1).norm(dim=-1).mean()), 3), "l2": round(float((valid - l2).norm(dim=-1).mean()), 3),
            "l2_spread": round(spread(l2) / data_spread, 4), **{k: round(float(v), 4) for k, v in d_real.items()},
        })
        window.clear()
        print(name, json.dumps(curve[-1]), flush=True)
        return samples, l1, l2

    net.train()
    while cpu < seconds:
        start = time.process_time()
        terms = net.loss(stream.next_batch(), step=step)
        if not all(bool(torch.isfinite(terms[f"loss/{g}"])) for g in groups):
            nonfinite_at = step  # the run ends here: its record says where
            break
        group_step(groups, optimizers, terms)
        step += 1
        cpu += time.process_time() - start
        window.append({k: float(terms[k]) for k in ("loss/generator", "loss/discriminator", "d_encoder_accuracy", "d_decoder_accuracy")})
        if step % eval_every == 0:
            evaluate()
    samples, l1, l2 = evaluate() if nonfinite_at is None else (None, None, None)
    runs.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), runs / f"{name}-{seconds:g}s-seed{seed}.pt")  # for looking inside D afterwards
    if samples is not None:
        figure(runs / f"{name}-{seconds:g}s-seed{seed}.png", valid[:10], l1[:10], l2[:10], samples[:40], f"{name}: step {step}")
    last = curve[-1] if curve else {}
    record = {
        "name": name, "tests": meaning, "model_options": model_options, "train_options": {**GAN_TRAIN, **train_options},
        "seed": seed, "cpu_seconds": round(cpu, 1), "steps": step, "eval_every": eval_every, "nonfinite_at_step": nonfinite_at,
        "last": last, "curve": curve,
    }
    path.write_text(json.dumps(record, indent=1))
    return record


def figure(path: Path, x, l1, l2, samples, title: str) -> None:
    """Rows: 10 validation images, their level-1 and level-2 reconstructions, then 40 samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [x, l1, l2, *samples.reshape(4, 10, -1)]
    labels = ["x", "level 1", "level 2", "samples", "", "", ""]
    fig, axes = plt.subplots(len(rows), 10, figsize=(10, len(rows) + 0.4))
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(28, 28).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description="why HALI's spatial network collapses in short CPU runs: one run per hypothesis")
    parser.add_argument("--only", nargs="+", choices=list(HYPOTHESES), default=list(HYPOTHESES))
    parser.add_argument("--seconds", type=float, default=360.0, help="CPU seconds of training per hypothesis (one thread)")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=str(here / "runs-hali-spatial"))
    parser.add_argument("--out", default=str(here / "results" / "hali_spatial.json"))
    args = parser.parse_args(argv)
    for name in args.only:
        diagnose_one(name, args.seconds, args.eval_every, args.seed, Path(args.runs))
    records = [json.loads(p.read_text()) for p in sorted(Path(args.runs).glob(f"*-seed{args.seed}.json"))]
    order = {name: i for i, name in enumerate(HYPOTHESES)}
    records.sort(key=lambda r: (order.get(r["name"], len(order)), r["cpu_seconds"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "hali_spatial", "machine": machine(), "runs": records}, indent=1))
    for r in records:
        last = r["last"]
        if r.get("nonfinite_at_step") is not None:
            print(f"{r['name']:>20} a loss was not finite at step {r['nonfinite_at_step']}; last record: {json.dumps(last)}")
            continue
        print(f"{r['name']:>20} {r['steps']:>5} steps {r['cpu_seconds'] / 60:5.2f} CPU-min: sample spread {last['sample_spread']:.2f}, "
              f"l1 {last['l1']:.2f} l2 {last['l2']:.2f} (l2 spread {last['l2_spread']:.2f}), D loss {last.get('loss/discriminator', float('nan')):.3f}")


if __name__ == "__main__":
    main()
