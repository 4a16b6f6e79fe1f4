"""The commands of README.md and docs/*.md, run as written and shrunk only in budget.

Every ```bash block of README.md and then of each docs/*.md page (sorted by name) is read;
``\\`` continuations are joined, ``#`` comments dropped and ``&&`` chains split, and each command
that runs ``pogm`` (or ``.venv/bin/pogm``) or a script in ``benchmarks/`` is collected. `shrink`
then changes only budget-like options (epochs, steps, CPU-time budgets, importance samples,
evaluation limits, threads and worker processes, dataset sizes) and nothing else. The commands run
in that order in one temporary working directory, so relative paths such as
``--out runs/m2-mnist`` stay distinct or identical exactly as written, and a command that
evaluates or resumes a run finds the run an earlier command wrote (a page may use a run of the
README or of an earlier page).

The files a page asks the reader to write are written first (`example_files`): the model file of
docs/ADDING_A_MODEL.md is executed, so its model is registered while the commands run (and
removed afterwards), and its recipe is saved in the working directory.

The commands that cannot run in a test are listed in `SKIPS` with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]  # in the order their commands run
COMMANDS_IN_PAGES = 78  # how many commands the extractor finds in PAGES: a command lost or added fails

# Commands that cannot run in a test: (a regular expression the command as written matches, why).
SKIPS = [
    (r"^make ", "sets up a virtual environment and runs the whole test suite"),
    (r"^torchrun ", "multi-process training under torchrun; tests/test_distributed.py covers it"),
    (r" --nproc [2-9]", "multi-process training (launches torchrun); tests/test_distributed.py covers it"),
    (r"^pogm reproduce ssl-mnist100", "trains four MNIST models and classifies the 20,000 validation and test images with each (ADGM "
     "and SDGM averaging 20 samples of a): about 20 s at any --budget, past this file's time budget; "
     "`pogm reproduce hali-mnist100` runs the same code"),
    (r"^python benchmarks/", "a benchmark: tens of CPU-minutes to hours by design, in parallel processes"),
    (r"^benchmarks/gpu_check\.sh", "the prepared GPU check: needs a CUDA GPU; its tests are tests/test_cuda.py, which skip without one"),
    (r"^pogm eval benchmarks/runs/", "evaluates a run of benchmarks/ssl_mnist.py, a 60-CPU-minute benchmark"),
]

# Commands that fail today: (a regular expression the command as written matches, strict, why).
XFAILS: list[tuple[str, bool, str]] = []  # (pattern, strict, reason) of commands known to fail


# ------------------------------------------------------------------------------------ extraction


def bash_blocks(markdown: str) -> list[str]:
    """The text of every ```bash fenced block of ``markdown``, in order."""
    return re.findall(r"^```bash[ \t]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def block_commands(block: str) -> list[list[str]]:
    """The commands of a bash block as argv lists: continuation lines joined, comments dropped,
    ``&&`` chains split into their commands, leading ``VAR=value`` assignments dropped."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv: list[str] = []
        for token in [*lexer, "&&"]:
            if token == "&&":
                if argv:
                    commands.append(argv)
                argv = []
            elif argv or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
                argv.append(token)
    return commands


def readme_commands(markdown: str) -> list[list[list[str]]]:
    """The commands of every bash block of ``markdown``: one list of argv lists per block."""
    return [block_commands(block) for block in bash_blocks(markdown)]


def page_name(page: Path) -> str:
    """A page as named in test ids: ``README.md``, ``docs/hali.md``."""
    return page.relative_to(ROOT).as_posix()


def example_files(markdown: str) -> dict[str, str]:
    """The files a page asks the reader to write: ``{path: content}`` of every ```python or
    ```yaml block whose first line is a comment that names the file, e.g.
    ``# src/pogm/models/semi_supervised/beta_vae.py`` or ``# beta-vae-digits.yaml``."""
    blocks = re.findall(r"^```(?:python|yaml)[ \t]*\n# (\S+\.(?:py|yaml))[ \t]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    return dict(blocks)


@contextlib.contextmanager
def example_models(files: dict[str, str]):
    """Run the model files among ``files`` (``src/pogm/models/...py``) as the modules they name,
    so that their models are registered; on exit, remove those models and modules again. A file
    that exists in the package is skipped: importing pogm registers it already."""
    from pogm.models.registry import _REGISTRY

    registered, modules = set(_REGISTRY), []
    try:
        for path, source in files.items():
            if not path.startswith("src/pogm/models/") or (ROOT / path).exists():
                continue
            name = path.removeprefix("src/").removesuffix(".py").replace("/", ".")
            module = types.ModuleType(name)
            module.__file__ = str(ROOT / path)
            sys.modules[name] = module  # dataclasses and typing look a class's module up here
            modules.append(name)
            exec(compile(source, str(ROOT / path), "exec"), module.__dict__)
        yield sorted(set(_REGISTRY) - registered)
    finally:
        for name in set(_REGISTRY) - registered:
            del _REGISTRY[name]
        for name in modules:
            sys.modules.pop(name, None)


def as_written(argv: list[str]) -> str:
    """The command as the page spells it (a ``.venv/bin/`` prefix dropped)."""
    return " ".join(argv).removeprefix(".venv/bin/")


def skip_reason(argv: list[str]) -> str | None:
    """Why ``argv`` cannot run in a test, or None when it can."""
    command = as_written(argv)
    return next((reason for pattern, reason in SKIPS if re.search(pattern, command)), None)


# ----------------------------------------------------------------------------------- budget only

STEPS = 2  # optimizer steps of every new training run
IW_SAMPLES = 2  # --iw-samples
LIMIT = 20  # --limit: test examples for the likelihood estimates
BUDGET_MINUTES = 0.01  # `pogm reproduce --budget`
REPRODUCE_SEEDS = ["--seeds", "0"]  # `pogm reproduce` without seeds: one seed, not the table's three
MNIST_TRAIN = 1000  # an epoch of MNIST: this many training images (data.n_valid takes the rest)
# ``--set`` keys that are budgets (CPU time, threads, M1's steps, Monte Carlo samples of the
# classifier at test time), with their tiny values; set in the command or in its recipe.
BUDGET_SETS = {"train.cpu_budget_seconds": "1", "train.threads": "1", "m1_steps": "1", "classify_a_samples": "1"}
BUDGET_OPTIONS = {"--epochs", "--iw-samples", "--limit", "--budget", "--jobs", "--seeds"}  # options whose value is a budget


def _replace_option(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with the value after ``option`` replaced by ``value``, or both added."""
    if option not in argv:
        return [*argv, option, value]
    return [value if i and argv[i - 1] == option else arg for i, arg in enumerate(argv)]


def _recipe(argv: list[str]) -> dict:
    """The recipe a ``pogm train`` command names ({} without one)."""
    from pogm.recipes import load_recipe

    names = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("--recipe", "--config")]
    return load_recipe(names[-1]) if names else {}


def _shrink_train(argv: list[str]) -> list[str]:
    if "--resume" in argv:  # a resumed run keeps its own settings; --epochs raises its limit
        return _replace_option(argv, "--epochs", "1") if "--epochs" in argv else argv
    recipe = _recipe(argv)
    source = argv[argv.index("--data") + 1] if "--data" in argv else recipe.get("source")
    shrunk, given = [], set()
    for i, arg in enumerate(argv):
        key = arg.partition("=")[0] if i and argv[i - 1] == "--set" else None
        given.add(key)
        shrunk.append(f"{key}={BUDGET_SETS[key]}" if key in BUDGET_SETS else arg)
    for key, value in BUDGET_SETS.items():
        section, _, name = key.rpartition(".")
        if key not in given and name in recipe.get(section or "model", {}):
            shrunk += ["--set", f"{key}={value}"]
    shrunk += ["--set", f"train.max_steps={STEPS}", "--set", "train.eval_elbo_limit=100"]
    if "--epochs" in argv:
        shrunk = _replace_option(shrunk, "--epochs", "1")
        if source == "mnist":  # the README's epochs resume to the end of epoch 1: make it short
            shrunk += ["--set", f"data.n_valid={60000 - MNIST_TRAIN}"]
    return shrunk


def shrink(argv: list[str]) -> list[str]:
    """``argv`` (a ``pogm`` command, program name first) with only its budget made tiny: fewer
    steps, epochs, CPU-minutes, importance samples and examples, one thread and one process."""
    command = argv[1] if len(argv) > 1 else ""
    if command == "train":
        return _shrink_train(argv)
    if command == "eval" or (command == "impute" and "--limit" in argv):
        argv = _replace_option(argv, "--limit", str(LIMIT))
        return _replace_option(argv, "--iw-samples", str(IW_SAMPLES)) if "--iw-samples" in argv else argv
    if command == "reproduce" and "--list" not in argv:
        argv = _replace_option(_replace_option(argv, "--budget", str(BUDGET_MINUTES)), "--jobs", "1")
        # every seed trains (and evaluates) every run of the table again: one seed unless written
        return argv if {"--seed", "--seeds"} & set(argv) else [*argv, *REPRODUCE_SEEDS]
    return list(argv)


# ------------------------------------------------------------------------------------- running


def run_pogm(argv: list[str]) -> tuple[int, str]:
    """``pogm ARGV`` in this process: (exit code, what it printed)."""
    from pogm.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse errors and --help
            code = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
        except Exception:  # a traceback and status 1, as the console script would end
            traceback.print_exc()
            code = 1
    return code, printed.getvalue()


def write_user_files(cwd: Path, files: dict[str, str], arrays: bool = True) -> None:
    """The files the pages ask the user to bring: ``my_data.npz`` (keys x and y) and the
    memory-mapped store ``big-store`` of uint8 images written as docs/training.md shows (unless
    not ``arrays``), and the recipes of ``files`` (`example_files`) as the pages write them."""
    for path, content in files.items():
        if path.endswith(".yaml"):
            (cwd / path).parent.mkdir(parents=True, exist_ok=True)
            (cwd / path).write_text(content)
    if not arrays:
        return
    from sklearn.datasets import load_digits

    from pogm.data.memmap import write_memmap_store
    from pogm.data.sources.mnist import find_mnist

    digits = load_digits()
    np.savez(cwd / "my_data.npz", x=(digits.data / 16).astype(np.float32), y=digits.target)
    with np.load(find_mnist(download_if_missing=False), allow_pickle=False) as mnist:
        x, y = mnist["x_train"][:2000], mnist["y_train"][:2000]
    assert x.dtype == np.uint8
    chunks = ((x[i : i + 500], y[i : i + 500]) for i in range(0, len(x), 500))
    write_memmap_store(cwd / "big-store", chunks)


def _ident(page: str, block: int, argv: list[str]) -> str:
    return f"{page}#block{block}: {as_written(argv)}"


CASES = [
    (page_name(page), b, argv)
    for page in PAGES
    for b, commands in enumerate(readme_commands(page.read_text()))
    for argv in commands
]
EXAMPLE_FILES = {path: content for page in PAGES for path, content in example_files(page.read_text()).items()}


@pytest.fixture(scope="session")
def readme_results(tmp_path_factory) -> dict[str, tuple[int, str, float]]:
    """Every runnable command of the pages, shrunk, run in order in one working directory, with
    the pages' example models registered: {ident: (exit code, what it printed, seconds)}."""
    from pogm.data.sources.mnist import find_mnist

    try:
        find_mnist(download_if_missing=False)
    except (FileNotFoundError, ValueError, OSError) as error:  # the commands train on MNIST, mocap, ...
        pytest.skip(f"the commands of README.md and docs/ need the shared data (set POGM_DATA to the shared data folder): {error}")
    cwd = tmp_path_factory.mktemp("readme")
    data = os.environ.get("POGM_DATA")
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        if data:  # relative to where the tests started, not to the commands' working directory
            patch.setenv("POGM_DATA", os.pathsep.join(str(Path(p).resolve()) for p in data.split(os.pathsep)))
        patch.chdir(cwd)
        write_user_files(cwd, EXAMPLE_FILES)
        with example_models(EXAMPLE_FILES):
            for page, block, argv in CASES:
                if skip_reason(argv) is None:
                    start = time.perf_counter()
                    code, printed = run_pogm(shrink(argv)[1:])
                    results[_ident(page, block, argv)] = (code, printed, time.perf_counter() - start)
    return results


def _param(page: str, block: int, argv: list[str]):
    marks = [pytest.mark.xfail(strict=strict, reason=reason) for pattern, strict, reason in XFAILS if re.search(pattern, as_written(argv))]
    if skip_reason(argv) is not None:
        marks.append(pytest.mark.skip(reason=skip_reason(argv)))
    return pytest.param(page, block, argv, id=_ident(page, block, argv), marks=marks)


@pytest.mark.parametrize("page, block, argv", [_param(*case) for case in CASES])
def test_readme_command_runs(readme_results, page, block, argv):
    code, printed, seconds = readme_results[_ident(page, block, argv)]
    assert code == 0, f"{as_written(argv)}\nran as: {' '.join(shrink(argv))}\nexit code {code} after {seconds:.1f} s:\n{printed[-3000:]}"


# ------------------------------------------------------------------------- the extractor itself


def test_extractor_joins_continuations_splits_chains_and_drops_comments():
    snippet = """Some text.

```bash
pogm train m2 --data mnist --labels 10 \\
     --set train.lr=1e-3   # 100 labels
pogm train --recipe avae2-mnist --out runs/a && pogm eval runs/a --iw-samples 5000   # two commands
POGM_DATA=../shared/data .venv/bin/python benchmarks/speed.py --settings m2 adgm
```

```python
import pogm  # not a bash block
```
"""
    assert readme_commands(snippet) == [[
        ["pogm", "train", "m2", "--data", "mnist", "--labels", "10", "--set", "train.lr=1e-3"],
        ["pogm", "train", "--recipe", "avae2-mnist", "--out", "runs/a"],
        ["pogm", "eval", "runs/a", "--iw-samples", "5000"],
        [".venv/bin/python", "benchmarks/speed.py", "--settings", "m2", "adgm"],
    ]]


def test_extractor_finds_every_command_of_the_pages():
    from pogm.cli import build_parser

    assert PAGES[0] == README and len(PAGES) > 1, PAGES
    for page in PAGES:
        assert all(readme_commands(page.read_text())), f"a bash block without a command in {page_name(page)}"
    commands = [argv for _, _, argv in CASES]
    assert len(commands) == COMMANDS_IN_PAGES, f"{len(commands)} commands in README.md and docs/*.md; update COMMANDS_IN_PAGES if that is meant"
    written = [as_written(argv) for argv in commands]
    assert not [c for c in set(written) if written.count(c) > 1], "a command written twice also runs twice: write it on one page"
    for argv in commands:
        if argv[0] in ("pogm", ".venv/bin/pogm"):
            build_parser().parse_args(argv[1:])  # a typo in an option exits here
        elif argv[0] == ".venv/bin/python":
            assert (ROOT / argv[1]).is_file(), as_written(argv)
        else:
            assert skip_reason(argv), f"neither run nor skipped: {as_written(argv)}"


def test_shrink_changes_only_budgets(tmp_path, monkeypatch):
    argv = "pogm train m2 --data mnist --labels 10 --epochs 100 --out runs/m2 --set train.lr=1e-3 --set train.threads=2".split()
    assert shrink(argv) == [
        *"pogm train m2 --data mnist --labels 10 --epochs 1 --out runs/m2 --set train.lr=1e-3 --set train.threads=1".split(),
        "--set", f"train.max_steps={STEPS}", "--set", "train.eval_elbo_limit=100", "--set", f"data.n_valid={60000 - MNIST_TRAIN}",
    ]
    assert shrink("pogm train m2 --out runs/m2 --resume --epochs 200".split()) == "pogm train m2 --out runs/m2 --resume --epochs 1".split()
    assert shrink("pogm eval runs/a --iw-samples 5000".split()) == f"pogm eval runs/a --iw-samples {IW_SAMPLES} --limit {LIMIT}".split()
    assert shrink("pogm report runs/a --compare runs/b".split()) == "pogm report runs/a --compare runs/b".split()
    assert shrink("pogm reproduce t --budget 60 --jobs 2".split()) == f"pogm reproduce t --budget {BUDGET_MINUTES} --jobs 1 --seeds 0".split()
    assert shrink("pogm reproduce t --seed 3".split()) == f"pogm reproduce t --seed 3 --budget {BUDGET_MINUTES} --jobs 1".split()
    # Over every page: the command as written stays, apart from budget values, and only
    # budget options are added (a command's recipe is read where the pages write it).
    monkeypatch.chdir(tmp_path)
    write_user_files(tmp_path, {path: content for path, content in EXAMPLE_FILES.items() if path.endswith(".yaml")}, arrays=False)
    for _, _, argv in CASES:
        if argv[0].endswith("pogm"):
            shrunk = shrink(argv)
            for i, (old, new) in enumerate(zip(argv, shrunk)):
                assert old == new or argv[i - 1] in BUDGET_OPTIONS or old.partition("=")[0] in BUDGET_SETS, (argv, shrunk)
            added = shrunk[len(argv):]
            assert all(added[i] in BUDGET_OPTIONS | {"--set"} for i in range(0, len(added), 2)), added


def test_the_example_model_passes_the_contract_tests(tmp_path):
    """docs/ADDING_A_MODEL.md says that tests/test_contract.py picks its model up: run those tests
    on it (while the page's model file is not in the package, which would register it anyway)."""
    import importlib.util

    model_files = [path for path in EXAMPLE_FILES if path.startswith("src/pogm/models/")]
    assert model_files, "docs/ADDING_A_MODEL.md writes no model file"
    if all((ROOT / path).exists() for path in model_files):
        pytest.skip("the example model is in the package: tests/test_contract.py runs on it")
    spec = importlib.util.spec_from_file_location("contract_of_the_example", ROOT / "tests" / "test_contract.py")
    contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contract)
    with example_models(EXAMPLE_FILES) as names:
        assert names, f"{model_files} register no model"
        for name in names:
            contract.test_builds_and_gives_a_finite_loss_with_finite_gradients(name)
            contract.test_save_and_load_give_identical_outputs(name, tmp_path)
            contract.test_deterministic_under_a_seed(name)
            contract.test_unknown_config_keys_are_an_error(name)
            contract.test_offered_methods_work_with_the_right_shapes(name)
    from pogm.models import list_models

    assert not set(names) & set(list_models()), "the example model stayed registered"


def test_every_source_is_documented(monkeypatch):
    """`pogm train --help` and the README's --data list name every registered source."""
    from pogm.data.sources import list_sources

    monkeypatch.setenv("COLUMNS", "10000")  # argparse wraps no line (nor a name at its hyphen)
    code, printed = run_pogm(["train", "--help"])
    assert code == 0
    help_text = next(line for line in printed.splitlines() if line.lstrip().startswith("--data DATA"))
    bullet = next(line for line in README.read_text().split("\n* ") if line.startswith("`--data` is"))
    for name in list_sources():
        assert re.search(rf"[ (]{re.escape(name)}[,)]", help_text), (name, help_text)
        assert f"`{name}`" in bullet or name == "npz", name


def test_gan_benchmark_completion_without_its_run_says_so(tmp_path):
    """`gan_mnist.py completion` before the run it evaluates exists: one line, no traceback."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gan_mnist", ROOT / "benchmarks" / "gan_mnist.py")
    gan_mnist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gan_mnist)
    with pytest.raises(SystemExit) as exit:
        gan_mnist.main(["completion", "--runs", str(tmp_path)])
    message = exit.value.code
    assert isinstance(message, str) and "\n" not in message  # Python prints it alone, exit status 1
    assert "no cvae-partial run" in message and "--generative cvae-partial" in message
