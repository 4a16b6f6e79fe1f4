"""What makes M1+M2 work on MNIST with 100 labels: the hypotheses about Kingma et al. (2014)'s M1+M2 that ours might miss, measured.

M1 (the slow part) is trained once per M1 variant for ``--m1-seconds`` CPU seconds and cached in
``benchmarks/runs-m1m2/`` (git-ignored); then every M2 hypothesis trains the real `M1M2` model
(M1 frozen, ``step >= m1_steps``) from that M1 for ``--m2-seconds`` CPU seconds with the same seed,
Adam, 100 labelled + 100 unlabelled images per step, and is scored on the validation and test sets
(classification with the mean of q(z1|x), as `M1M2.classify` does; the test error reported is that
of the evaluation with the lowest validation error). Results: benchmarks/results/m1m2_diagnosis.json.

    OMP_NUM_THREADS=1 POGM_DATA=/work/shared/data python benchmarks/m1m2_diagnosis.py
    ... --only baseline grey --m2-seconds 120

The JSON in the repository came from ``--m1-seconds 360 --m2-seconds 90 --seed 0``; a run with
``--only`` adds its hypotheses (and M1 variants) to the JSON and keeps the others.

"Binary" data is MNIST binarised afresh every step (``data.binarize=true``; evaluated on one fixed
binarisation, as pogm's metrics do); "grey" is the grey-level image (``data.binarize=false``), from
which M1 still learns on a Bernoulli sample per step (``m1_binarize``), as Kingma et al. do.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

from pogm.data.batch import Batch
from pogm.data.sources import load_source
from pogm.data.splits import balanced_label_split
from pogm.models.semi_supervised.m1m2 import M1M2, M1M2Config

ROOT = Path(__file__).resolve().parent
EVAL_BINARIZATION_SEED = 1234

# M1 variants: VAE training options (KL warm-up over steps), or "authors": no training, the
# encoder Kingma et al. released (2 x 500 softplus, z of 50, trained ~10,000 epochs), read from
# ``--authors-m1`` (their repository's models/mnist_z_x_50-500-500_longrun/v.ndict.tar.gz).
M1_VARIANTS = {"plain": {"kl_warmup_steps": 0}, "warmup": {"kl_warmup_steps": 5000}, "authors": {"m1_hidden": (500, 500)}}

# M2 hypotheses: (M1 variant, data ("binary" or "grey"), M1M2Config fields, Adam lr).
# OLD: the recipe's M2 settings before this diagnosis, except the weighting, which is M2's default now
# (eq. 9's "data-set"; the old recipe had "per-batch", see the "per-batch" hypothesis).
OLD = {"active_threshold": 0.0, "features": "sample", "m2_likelihood": "gaussian-learned", "batch_norm": True}
# M2 as Kingma et al.'s run_2layer_ssl.py builds it for 100 labels: one hidden layer of 300, no batch norm.
AUTHORS_M2 = {**OLD, "active_threshold": 0.1, "m2_likelihood": "gaussian-predicted", "batch_norm": False, "hidden": (300,)}
HYPOTHESES = {
    "baseline": ("plain", "binary", OLD, 1e-3),
    "grey": ("plain", "grey", OLD, 1e-3),
    "active": ("plain", "binary", {**OLD, "active_threshold": 0.1}, 1e-3),
    "grey+active": ("plain", "grey", {**OLD, "active_threshold": 0.1}, 1e-3),
    "grey+active+mean": ("plain", "grey", {**OLD, "active_threshold": 0.1, "features": "mean"}, 1e-3),
    "grey+active+predicted": ("plain", "grey", {**OLD, "active_threshold": 0.1, "m2_likelihood": "gaussian-predicted"}, 1e-3),
    "grey+active+nobn": ("plain", "grey", {**OLD, "active_threshold": 0.1, "batch_norm": False}, 1e-3),
    "grey+active+per-batch": ("plain", "grey", {**OLD, "active_threshold": 0.1, "weighting": "per-batch"}, 1e-3),
    "grey+active+lr3e-4": ("plain", "grey", {**OLD, "active_threshold": 0.1}, 3e-4),
    "grey+active+h300": ("plain", "grey", {**OLD, "active_threshold": 0.1, "hidden": (300,)}, 1e-3),
    "warmup+grey+active": ("warmup", "grey", {**OLD, "active_threshold": 0.1}, 1e-3),
    # Our best M2 settings above on the authors' long-trained M1: are the features the bottleneck?
    "authors-m1+grey+active+predicted": ("authors", "grey", {**OLD, "active_threshold": 0.1, "m2_likelihood": "gaussian-predicted"}, 1e-3),
    # ... and M2 as their run_2layer_ssl.py builds it for 100 labels (AUTHORS_M2, Adam 3e-4); their
    # 1 labelled + 499 unlabelled images a step are not copied here.
    "authors-m1+authors-m2": ("authors", "grey", AUTHORS_M2, 3e-4),
    # ... and that M2 on our own M1: which of the two halves matters?
    "grey+active+authors-m2": ("plain", "grey", AUTHORS_M2, 3e-4),
    "warmup+grey+active+authors-m2": ("warmup", "grey", AUTHORS_M2, 3e-4),
}


def load_mnist(seed: int):
    splits = load_source("mnist", binarize=False)
    train, valid, test = splits.train, splits.valid, splits.test
    x = train.x["x"].reshape(len(train), -1).float()
    labelled = balanced_label_split(train.y, 10, 10, seed)
    flat = lambda d: d.x["x"].reshape(len(d), -1).float()  # noqa: E731
    return x, train.y, labelled, (flat(valid), valid.y), (flat(test), test.y)


def config(m1_variant: str = "plain", **fields) -> M1M2Config:
    return M1M2Config(m1_steps=10**9, m1_hidden=M1_VARIANTS[m1_variant].get("m1_hidden", M1M2Config.m1_hidden), **fields)


def load_authors_m1(path: Path) -> tuple[dict, dict]:
    """The released M1 encoder of Kingma et al.'s code as our M1's state (decoder left at its
    initialisation: M2 reads only q(z1|x)). The archive holds arrays.npz and names.txt, the i-th
    name labelling arr_i; weights are [out, in] and biases [out, 1], as our Linear layers store them."""
    with tarfile.open(path, "r:gz") as tar:
        names = tar.extractfile("names.txt").read().decode().split()
        arrays = np.load(io.BytesIO(tar.extractfile("arrays.npz").read()))
        v = {name: torch.from_numpy(arrays[f"arr_{i}"]).float() for i, name in enumerate(names)}
    state = M1M2(config("authors")).m1.state_dict()
    state.update({
        "q_z_x.net.inputs.0.weight": v["w0"], "q_z_x.net.inputs.0.bias": v["b0"][:, 0],  # [500, 784], [500]
        "q_z_x.net.body.1.weight": v["w1"], "q_z_x.net.body.1.bias": v["b1"][:, 0],  # [500, 500], [500]
        "q_z_x.net.out.weight": torch.cat([v["mean_w"], v["logvar_w"]]),  # [100, 500]: mean, then log-variance
        "q_z_x.net.out.bias": torch.cat([v["mean_b"], v["logvar_b"]])[:, 0],  # [100]
    })
    return state, {"m1_variant": "authors", "source": path.name}


def train_m1(variant: str, seconds: float, seed: int, x: torch.Tensor) -> tuple[dict, dict]:
    """Train M1 (through `M1M2.loss` at steps < m1_steps) for ``seconds`` CPU seconds; cached."""
    path = ROOT / "runs-m1m2" / f"m1-{variant}-{seconds:g}s-seed{seed}.pt"
    if path.exists():
        saved = torch.load(path)
        return saved["state"], saved["info"]
    torch.manual_seed(seed)
    model = M1M2(config(variant))
    opt = torch.optim.Adam(model.m1.parameters(), 1e-3)
    warmup = M1_VARIANTS[variant]["kl_warmup_steps"]
    start, step = time.process_time(), 0
    while time.process_time() - start < seconds:
        idx = torch.randint(len(x), (200,))
        kl_weight = min(1.0, step / warmup) if warmup else 1.0
        loss = model.loss(Batch(x={"x": x[idx]}), kl_weight=kl_weight, step=0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    with torch.no_grad():
        std = model.m1.posterior(x[:1000]).mean.std(0)
    info = {"m1_variant": variant, "m1_cpu_seconds": time.process_time() - start, "m1_steps": step, "active_units_0.1": int((std > 0.1).sum()), "active_units_0.01": int((std > 0.01).sum())}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.m1.state_dict(), "info": info}, path)
    print("M1", info, flush=True)
    return model.m1.state_dict(), info


@torch.no_grad()
def error(model: M1M2, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    wrong = sum(int((model.classify(Batch(x={"x": x[i:i + 2000]})).argmax(-1) != y[i:i + 2000]).sum()) for i in range(0, len(x), 2000))
    model.train()
    return wrong / len(x)


def train_m2(name: str, m1_state: dict, data, seconds: float, seed: int, evals: int = 6) -> dict:
    m1_variant, kind, fields, lr = HYPOTHESES[name]
    x, y, labelled, (x_valid, y_valid), (x_test, y_test) = data
    if kind == "binary":
        g = torch.Generator().manual_seed(EVAL_BINARIZATION_SEED)
        x_valid, x_test = torch.bernoulli(x_valid, generator=g), torch.bernoulli(x_test, generator=g)
    torch.manual_seed(seed)
    model = M1M2(config(m1_variant, **fields))
    model.m1.load_state_dict(m1_state)
    opt = torch.optim.Adam(model.m2.parameters(), lr)
    is_labelled = torch.zeros(len(x), dtype=torch.bool)
    is_labelled[labelled] = True
    unlabelled = torch.nonzero(~is_labelled).squeeze(1)
    records, start, step, next_eval = [], time.process_time(), 0, seconds / evals
    while True:
        used = time.process_time() - start
        if used >= next_eval:
            records.append({"step": step, "cpu_seconds": round(used, 1), "valid_error": error(model, x_valid, y_valid), "test_error": error(model, x_test, y_test)})
            print(name, records[-1], flush=True)
            next_eval += seconds / evals
            if used >= seconds:
                break
        idx = torch.cat([labelled[torch.randint(len(labelled), (100,))], unlabelled[torch.randint(len(unlabelled), (100,))]])
        xb = torch.bernoulli(x[idx]) if kind == "binary" else x[idx]
        y_mask = is_labelled[idx]
        loss = model.loss(Batch(x={"x": xb}, y=y[idx] * y_mask, y_mask=y_mask), step=10**9)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    best = min(records, key=lambda r: r["valid_error"])
    return {
        "hypothesis": name, "m1_variant": m1_variant, "data": kind, "setting": {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}, "lr": lr,
        "seed": seed, "m2_cpu_seconds": records[-1]["cpu_seconds"], "m2_steps": step, "active_units": int(model.active.sum()),
        "valid_error": best["valid_error"], "test_error": best["test_error"], "last_test_error": records[-1]["test_error"], "curve": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m1-seconds", type=float, default=360)
    parser.add_argument("--m2-seconds", type=float, default=90)
    parser.add_argument("--evals", type=int, default=6, help="evaluations per M2 run, evenly spread over --m2-seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="hypotheses to run (default: all)")
    parser.add_argument("--m1-only", action="store_true", help="train (cache) the M1 variants and stop")
    parser.add_argument("--authors-m1", type=Path, default=None, help="Kingma et al.'s released M1 (v.ndict.tar.gz) for the authors-m1 hypotheses")
    parser.add_argument("--out", default=str(ROOT / "results" / "m1m2_diagnosis.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_mnist(args.seed)
    names = args.only or list(HYPOTHESES)
    m1 = {}
    for variant in dict.fromkeys(HYPOTHESES[n][0] for n in names):
        if variant == "authors":
            if args.authors_m1 is None:
                parser.error("the authors-m1 hypotheses need --authors-m1 PATH (models/mnist_z_x_50-500-500_longrun/v.ndict.tar.gz of github.com/dpkingma/nips14-ssl)")
            m1[variant] = load_authors_m1(args.authors_m1)
        else:
            m1[variant] = train_m1(variant, args.m1_seconds, args.seed, data[0])
    if args.m1_only:
        return
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"hypotheses": {}}
    results.setdefault("m1", {}).update({v: info for v, (_, info) in m1.items()})
    for name in names:
        results["hypotheses"][name] = {**train_m2(name, m1[HYPOTHESES[name][0]][0], data, args.m2_seconds, args.seed, args.evals), "m1": m1[HYPOTHESES[name][0]][1]}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    for name in names:
        r = results["hypotheses"][name]
        print(f"{name:28s} valid {r['valid_error']:.4f} test {r['test_error']:.4f} active {r['active_units']} steps {r['m2_steps']}")


if __name__ == "__main__":
    main()
