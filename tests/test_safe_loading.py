"""Safe loading: run directories never execute code when loaded, and foreign or damaged files give
one clear error naming the file, through `pogm.runs.load_run` and ``pogm eval``.

Weights are safetensors, training states are read with ``torch.load(weights_only=True)`` and
``config.yaml`` with ``yaml.safe_load``; these tests plant files that would run a command if any
loader unpickled or built Python objects, and check that the command never ran.

Tests marked xfail describe the clear error we want where today's is not (a TypeError from deep
inside); each reason names the fix in ``pogm/train``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

import pogm
from pogm.cli import main
from pogm import checkpoint
from pogm.checkpoint import CheckpointError

TINY = {"hidden": [16], "z_dim": 2}


def call(argv: list) -> tuple[int, str, str]:
    """``pogm ARGV`` in-process: (exit code, stdout, stderr); an escaping exception is reported as
    exit code 99 with its type on stderr, so tests can tell a traceback from a clean exit."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except Exception as error:  # noqa: BLE001 (the point: no exception may escape the CLI)
            print(f"Traceback: {type(error).__name__}: {error}", file=sys.stderr)
            code = 99
    return code, out.getvalue(), err.getvalue()


def tiny_run(out: Path, model: str, **kwargs) -> Path:
    overrides = {"model": dict(TINY), "train": {"max_steps": 1, "progress": False}, "data": {}}
    return pogm.train(model, data="digits", out=out, overrides=overrides, progress=False, **kwargs).dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished one-step runs on the digits: a VAE and an M2 (different weights names)."""
    base = tmp_path_factory.mktemp("safe")
    return {"vae": tiny_run(base / "vae", "vae"), "m2": tiny_run(base / "m2", "m2", labels=2)}


@pytest.fixture
def run(runs, tmp_path) -> Path:
    return Path(shutil.copytree(runs["vae"], tmp_path / "run"))


def assert_clean_cli_error(run: Path, *needles: str) -> str:
    code, _, err = call(["eval", run])
    assert code == 2, err
    assert err.startswith("pogm eval: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def edit_config(run: Path, change) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    change(config)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


# ---------------------------------------------------------------------------------------- weights


def _foreign_weights(path: Path, runs: dict[str, Path]) -> None:
    shutil.copy(runs["m2"] / "model.safetensors", path)


WEIGHTS = {
    "another model's weights": (_foreign_weights, "does not match this model"),
    "random bytes": (lambda p, r: p.write_bytes(os.urandom(4096)), "not a safetensors file"),
    "a JSON file renamed": (lambda p, r: p.write_text(json.dumps({"weights": [1, 2, 3]})), "not a safetensors file"),
    "empty": (lambda p, r: p.write_bytes(b""), "not a safetensors file"),
    "a torch pickle renamed": (lambda p, r: torch.save({"w": torch.zeros(2)}, p), "not a safetensors file"),
    "an npz renamed": (lambda p, r: p.write_bytes(b"PK\x03\x04" + os.urandom(100)), "not a safetensors file"),
    "right names, wrong shapes": (
        lambda p, r: save_file({k: torch.zeros(1, 1, 1) for k in _names(r["vae"])}, str(p)),
        "has shape",
    ),
}


def _names(run: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(run / "model.safetensors"), "pt") as f:
        return list(f.keys())


@pytest.mark.parametrize("case", sorted(WEIGHTS))
@pytest.mark.parametrize("which", ["best", "latest"])
def test_foreign_weights_give_a_checkpoint_error_naming_the_file(run, runs, case, which):
    make, message = WEIGHTS[case]
    name = "best.safetensors" if which == "best" else "model.safetensors"
    make(run / name, runs)
    with pytest.raises(CheckpointError, match=message) as info:
        pogm.load_run(run, weights=which)
    assert str(run / name) in str(info.value)
    code, _, err = call(["eval", run, "--weights", which])
    assert code == 2 and err.startswith("pogm eval: error: ") and name in err and "Traceback" not in err, err


def test_load_weights_refuses_another_models_tensors(runs):
    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="does not match this model"):
        checkpoint.load_weights(runs["vae"] / "model.safetensors", model)
    before = model.weight.detach().clone()
    assert torch.equal(model.weight, before)  # a refused load changes nothing


# ---------------------------------------------------------------------------------------- no code execution


def _payloads(sentinel: Path) -> dict[str, str]:
    cmd = f"touch {sentinel}"
    return {
        "object/apply": f"!!python/object/apply:os.system [{cmd!r}]\n",
        "object/new": f"!!python/object/new:subprocess.Popen [[touch, {str(sentinel)!r}]]\n",
        "name": "!!python/name:os.system\n",
        "module": "!!python/module:os\n",
        "nested under model": f"format: pogm-run-v1\nmodel: !!python/object/apply:os.system [{cmd!r}]\n",
        "as a mapping key value": f"format: pogm-run-v1\nmodel: vae\nmodel_config: {{x: !!python/object/apply:os.system [{cmd!r}]}}\n",
    }


@pytest.mark.parametrize("payload", sorted(_payloads(Path("x"))))
def test_config_with_python_tags_is_refused_and_never_runs(run, tmp_path, payload):
    sentinel = tmp_path / "pwned"
    (run / "config.yaml").write_text(_payloads(sentinel)[payload])
    with pytest.raises(CheckpointError, match="config.yaml"):
        pogm.load_run(run)
    assert_clean_cli_error(run, "config.yaml")
    assert not sentinel.exists()


class _Evil:
    """Unpickling this would run a command."""

    sentinel = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["torch.save", "plain pickle"])
def test_training_state_with_a_malicious_pickle_is_refused_and_never_runs(run, tmp_path, how):
    sentinel = tmp_path / "pwned"
    evil = _Evil()
    evil.sentinel = str(sentinel)
    path = run / "state.pt"
    if how == "torch.save":
        torch.save({"step": 1, "payload": evil}, path)
    else:
        path.write_bytes(pickle.dumps({"step": 1, "payload": evil}))
    with pytest.raises(CheckpointError, match="state.pt"):
        checkpoint.load_state(path)
    assert not sentinel.exists()


def test_malicious_weights_cannot_run_code(run, tmp_path):
    # safetensors holds raw tensor bytes and a JSON header: there is nothing to execute. A pickle
    # planted under the weights name is refused, not unpickled.
    sentinel = tmp_path / "pwned"
    evil = _Evil()
    evil.sentinel = str(sentinel)
    (run / "best.safetensors").write_bytes(pickle.dumps(evil))
    with pytest.raises(CheckpointError, match="best.safetensors"):
        pogm.load_run(run)
    assert not sentinel.exists()


# ---------------------------------------------------------------------------------------- configs


def test_config_naming_an_unknown_model_is_a_clear_error(run):
    edit_config(run, lambda c: c.update(model="no-such-model"))
    with pytest.raises((KeyError, CheckpointError)) as info:
        pogm.load_run(run)
    assert "no-such-model" in str(info.value)
    assert_clean_cli_error(run, "no-such-model")


def test_config_naming_an_unknown_data_source_is_a_clear_error(run):
    edit_config(run, lambda c: c["data"].update(name="no-such-data"))
    with pytest.raises((ValueError, CheckpointError), match="no-such-data"):
        pogm.load_run(run)
    assert_clean_cli_error(run, "no-such-data")


def test_config_with_an_unknown_data_option_is_a_clear_error(run):
    edit_config(run, lambda c: c["data"].update(options={"bogus": 1}))
    with pytest.raises(ValueError, match="no option"):
        pogm.load_run(run)
    assert_clean_cli_error(run, "bogus")


def test_config_with_an_unknown_model_key_is_a_clear_error(run):
    edit_config(run, lambda c: c["model_config"].update(no_such_key=1))
    with pytest.raises((ValueError, CheckpointError), match="no_such_key"):
        pogm.load_run(run)
    assert_clean_cli_error(run, "no_such_key")


@pytest.mark.parametrize(
    "content",
    ["", "- a list\n- not a mapping\n", "just a string\n", "format: something-else\nmodel: vae\n", "model: vae\n"],
)
def test_config_not_written_by_pogm_is_refused(run, content):
    (run / "config.yaml").write_text(content)
    with pytest.raises(CheckpointError, match="config.yaml"):
        pogm.load_run(run)
    assert_clean_cli_error(run, "config.yaml")


def test_config_from_a_future_pogm_is_refused(run):
    edit_config(run, lambda c: c.update(format="pogm-run-v2", pogm_version="9.0.0"))
    with pytest.raises(CheckpointError, match="config.yaml"):
        pogm.load_run(run)
    assert_clean_cli_error(run, "config.yaml")


def test_config_from_a_future_pogm_says_so(run):
    edit_config(run, lambda c: c.update(format="pogm-run-v2", pogm_version="9.0.0"))
    with pytest.raises(CheckpointError, match=r"pogm-run-v2.*9\.0\.0.*(newer|upgrade)"):
        pogm.load_run(run)


DAMAGED_CONFIGS = {
    # name: (damage, what went wrong before checkpoint.read_config checked it)
    "config without a model": (lambda r: edit_config(r, lambda c: c.pop("model")), "KeyError: 'model' (the CLI printed just 'model')"),
    "model_config not a mapping": (lambda r: edit_config(r, lambda c: c.update(model_config="abc")), "ValueError about keys 'a', 'b', 'c'"),
    "model_config value of a wrong type": (lambda r: edit_config(r, lambda c: c["model_config"].update(z_dim="two")), "TypeError from torch.empty; the CLI shows a traceback"),
    "data not a mapping": (lambda r: edit_config(r, lambda c: c.update(data="digits")), "TypeError: string indices must be integers; traceback"),
    "data options not a mapping": (lambda r: edit_config(r, lambda c: c["data"].update(options=[1, 2])), "TypeError from **options; traceback"),
    "seed not an integer": (lambda r: edit_config(r, lambda c: c.update(seed="zero")), "TypeError from torch.manual_seed on --resume"),
    "config not UTF-8": (lambda r: (r / "config.yaml").write_bytes(b"format: pogm-run-v1\nmodel: \xff\xfe\n"), "UnicodeDecodeError without the path"),
    "config nested too deeply": (lambda r: (r / "config.yaml").write_text("format: pogm-run-v1\nmodel: " + "[" * 5000 + "]" * 5000 + "\n"), "RecursionError without the path"),
    "config YAML error on one line": (lambda r: (r / "config.yaml").write_text("!!python/name:os.system\n"), "the YAML error was printed over several lines"),
}

# Damage that read_config cannot see (the model's settings are checked by building the model).
STILL_UNCLEAR: dict[str, str] = {}  # damage that still escapes as a traceback: none known


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.xfail(reason=STILL_UNCLEAR[c], strict=False)) if c in STILL_UNCLEAR else c for c in sorted(DAMAGED_CONFIGS)],
)
def test_damaged_config_gives_one_line_checkpoint_error_naming_config_yaml(run, case):
    damage, _ = DAMAGED_CONFIGS[case]
    damage(run)
    with pytest.raises(CheckpointError, match="config.yaml"):
        pogm.load_run(run)
    err = assert_clean_cli_error(run, "config.yaml")
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("case", sorted(DAMAGED_CONFIGS))
def test_damaged_config_never_crashes_the_loader_silently(run, case):
    """What holds today for every damaged config: loading fails (no half-built run) with an exception."""
    damage, _ = DAMAGED_CONFIGS[case]
    damage(run)
    with pytest.raises(Exception):  # noqa: B017 (the precise type is the xfail test above)
        pogm.load_run(run)


def test_garbage_labelled_index_names_the_file(runs, tmp_path):
    run = Path(shutil.copytree(runs["m2"], tmp_path / "m2"))
    (run / "labelled_index.json").write_bytes(b"\xff\x00 not json")
    with pytest.raises(ValueError, match="labelled_index.json"):
        pogm.load_run(run)
    assert_clean_cli_error(run, "labelled_index.json")


@pytest.mark.parametrize("content", [[1, 2, 3], {"no_step": 1}, torch.zeros(3)], ids=["a list", "a dict without step", "a tensor"])
def test_training_state_that_is_not_a_dict_with_step_is_refused(run, content):
    torch.save(content, run / "state.pt")
    with pytest.raises(CheckpointError, match="state.pt.*not a pogm training state"):
        checkpoint.load_state(run / "state.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_refused_training_state_error_is_one_line_without_torch_advice(run, tmp_path):
    # torch's weights-only error runs to several paragraphs and advises weights_only=False, which
    # would run the planted code: the error keeps only the line saying what was refused.
    evil = _Evil()
    evil.sentinel = str(tmp_path / "pwned")
    torch.save({"step": 1, "payload": evil}, run / "state.pt")
    with pytest.raises(CheckpointError) as info:
        checkpoint.load_state(run / "state.pt")
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message and "GLOBAL" in message, message
