"""The HTML report in a real browser: ``pogm report RUN_DIR`` writes ``RUN_DIR/report.html``, which is
opened in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium).
For the demo run (M2 on digits) and a tiny run of every model family the page must load with no
console error, every image on it must have decoded (``naturalWidth > 0``) and be embedded as a
data URI (the page is self-contained), and a full-page screenshot (a non-blank PNG) is saved in
the test's temporary directory.

Set-up: when ``chromium`` or ``chromedriver`` is missing the session fixture installs them with
``apt-get`` (as root only); where that is impossible, or ``selenium`` is not installed, the tests
skip and say why. Selenium is pointed at the driver's path, so Selenium Manager downloads nothing.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as error:  # pragma: no cover - depends on the environment
    pytest.skip(f"selenium is not installed ({error}); install the test extra: pip install -c constraints.txt -e '.[test]'", allow_module_level=True)

from pogm.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
APT_PACKAGES = ["chromium", "chromium-driver"]
SKIP_HINT = "install Debian's chromium and chromium-driver to run the browser test"


# ---------------------------------------------------------------------------------------- the browser


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if path:
            return path
    return None


def _binaries() -> tuple[str | None, str | None]:
    return _find(("/usr/bin/chromium", "chromium")), _find(("/usr/bin/chromedriver", "chromedriver"))


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, timeout=900)


def _install_chromium() -> str | None:
    """Install chromium and chromium-driver with apt-get; None on success, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root, so apt-get cannot install it"
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this system"
    install = ("install", "-y", "--no-install-recommends", *APT_PACKAGES)
    try:
        result = _apt_get(*install)
        if result.returncode != 0:  # most often: no package lists yet (a fresh container)
            _apt_get("update")
            result = _apt_get(*install)
    except (OSError, subprocess.SubprocessError) as error:
        return f"apt-get failed: {error}"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"apt-get install {' '.join(APT_PACKAGES)} failed: {lines[-1] if lines else f'exit status {result.returncode}'}"
    return None


@pytest.fixture(scope="session")
def chromium_binaries() -> tuple[str, str]:
    """(chromium, chromedriver) paths, installing the Debian packages when they are missing."""
    chromium, driver = _binaries()
    if chromium is None or driver is None:
        reason = _install_chromium()
        chromium, driver = _binaries()
        if chromium is None or driver is None:
            missing = " and ".join(name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None)
            reason = reason or f"{missing} still missing after apt-get install"
            pytest.skip(f"headless Chromium is not installed and could not be installed: {reason}; {SKIP_HINT}")
    return chromium, driver


@pytest.fixture(scope="module")
def browser(chromium_binaries):
    """One headless Chromium for the whole module (starting it is the slow part)."""
    chromium, driver_path = chromium_binaries
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1024"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


ALL_IMAGES_DONE = "return Array.from(document.images).every(i => i.complete);"
IMAGES = "return Array.from(document.images).map(i => ({src: i.getAttribute('src') || '', alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}));"
# Everything else the page would fetch: scripts, style sheets, frames, media, objects.
EXTERNAL = """return Array.from(document.querySelectorAll('script[src], link[rel~="stylesheet"][href], iframe[src], video[src], audio[src], source[src], embed[src], object[data]'))
    .map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('data'))
    .filter(u => !u.startsWith('data:'));"""


def _short(src: str) -> str:
    return src if len(src) <= 60 else src[:60] + "..."


def open_page(driver, page: Path, screenshot: Path) -> dict:
    """Open ``page`` from disk, let every image load (scrolled into view, as a reader would) and
    save a full-page screenshot: the page's images, console log and other facts."""
    driver.get_log("browser")  # drop anything left over from an earlier page
    driver.get(page.resolve().as_uri())
    driver.execute_script("Array.from(document.images).forEach(i => i.scrollIntoView());")  # also wakes loading="lazy"
    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(ALL_IMAGES_DONE))
    driver.execute_script("window.scrollTo(0, 0);")
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    width, height = max(1, int(size["width"])), max(1, min(int(size["height"]), 16000))
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return {
        "title": driver.title,
        "text": driver.execute_script("return document.body ? document.body.innerText : '';"),
        "images": driver.execute_script(IMAGES),
        "external": driver.execute_script(EXTERNAL),
        "log": driver.get_log("browser"),
        "size": (width, height),
    }


def page_problems(facts: dict) -> list[str]:
    """Everything wrong with an opened page, one line each (empty: the page is clean)."""
    problems = [f"console {entry['level']} ({entry.get('source', '?')}): {entry['message']}" for entry in facts["log"] if entry["level"] == "SEVERE"]
    if not facts["images"]:
        problems.append("the page has no image")
    for image in facts["images"]:
        if not (image["complete"] and image["width"] > 0):
            problems.append(f"image did not load (complete={image['complete']}, naturalWidth={image['width']}): alt={image['alt']!r} src={_short(image['src'])}")
        if not image["src"].startswith("data:"):
            problems.append(f"image is not embedded as a data URI: src={_short(image['src'])}")
    problems += [f"the page fetches an external resource: {_short(url)}" for url in facts["external"]]
    return problems


def check_screenshot(path: Path) -> None:
    import numpy as np
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, f"{path} is not a PNG screenshot"
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, pixels.shape
    assert pixels.std() > 1, f"{path} is a blank screenshot"


# ---------------------------------------------------------------------------------------- the checks catch what they should


def test_the_checks_pass_a_clean_page_and_catch_a_broken_image_and_a_console_error(browser, tmp_path):
    """The checks themselves, on hand-made pages: a self-contained page passes; a missing image,
    a picture that is not one, a linked (not embedded) image and console errors are all caught."""
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(png, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    (tmp_path / "linked.png").write_bytes(png.getvalue())
    head = "<!doctype html><html><head><meta charset='utf-8'><title>t</title></head><body><h1>A report</h1>"
    clean = tmp_path / "clean.html"
    clean.write_text(f"{head}<p>Text.</p><img alt='good' src='{uri}'></body></html>")
    broken = tmp_path / "broken.html"
    broken.write_text(f"{head}<img alt='good' src='{uri}'><img alt='gone' src='missing.png'><img alt='garbage' src='data:image/png;base64,AAAA'>"
                      "<img alt='linked' src='linked.png'><script>console.error('boom'); notDefined();</script></body></html>")

    facts = open_page(browser, clean, tmp_path / "clean.png")
    assert page_problems(facts) == []
    assert facts["images"][0]["width"] == 40 and facts["title"] == "t"
    check_screenshot(tmp_path / "clean.png")

    problems = "\n".join(page_problems(open_page(browser, broken, tmp_path / "broken.png")))
    assert "alt='gone'" in problems and "alt='garbage'" in problems and "alt='good'" not in problems
    assert "src=linked.png" in problems and "alt='linked'" not in problems  # loads, but from a separate file
    assert "boom" in problems and "notDefined" in problems and "ERR_FILE_NOT_FOUND" in problems


# ---------------------------------------------------------------------------------------- the reports of tiny runs

QUIET = ["--set", "train.progress=false"]
# One tiny run per model family: one epoch or a few steps, small networks, bundled or synthetic data.
FAMILIES = {
    "adgm": ["adgm", "--data", "digits", "--labels", "5", "--epochs", "1", "--set", "train.max_steps=4",
             "--set", "hidden=[16]", "--set", "a_dim=4", "--set", "z_dim=4"],
    "hvae": ["hvae", "--data", "depth", "--labels", "20", "--unlabelled", "100", "--set", "data.n_train=200", "--set", "data.n_valid=20",
             "--set", "data.n_test=20", "--set", "data.size=16", "--set", "channels=[4, 8]", "--set", "fc_units=16", "--set", "z_dim=4",
             "--set", "train.batch_size=20", "--set", "train.labelled_batch_size=10", "--set", "train.max_steps=6"],
    "factvae": ["factvae", "--data", "bars", "--epochs", "1", "--set", "data.n_train=200", "--set", "data.n_valid=20", "--set", "data.n_test=50",
                "--set", "z_dim=4", "--set", "train.max_steps=4"],
    "cvae": ["cvae", "--data", "digits", "--epochs", "1", "--set", "train.max_steps=4", "--set", "hidden=[32]", "--set", "z_dim=4", "--set", "condition=both"],
    "vaegan": ["vaegan", "--data", "digits", "--epochs", "1", "--set", "train.max_steps=4", "--set", "hidden=[32]", "--set", "z_dim=4",
               "--set", "discriminator_hidden=[16]"],
    "draw": ["draw", "--data", "digits", "--epochs", "1", "--set", "train.max_steps=3", "--set", "steps=4", "--set", "lstm_units=16", "--set", "z_dim=4"],
    "hali": ["hali", "--data", "digits", "--epochs", "1", "--set", "train.max_steps=4", "--set", "hidden=[16]", "--set", "z_dims=[6,3]",
             "--set", "discriminator_hidden=[16]", "--set", "discriminator_joint_hidden=[16]"],
}


def quietly(argv: list[str]) -> tuple[int, str]:
    """``pogm ARGV`` in-process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def report_opens_cleanly(browser, run: Path, model: str, screenshot: Path) -> None:
    page = run / "report.html"
    assert page.is_file(), f"pogm report wrote no {page}"
    facts = open_page(browser, page, screenshot)
    problems = page_problems(facts)
    assert not problems, f"{model} report {page}:\n" + "\n".join(problems)
    assert model in facts["text"], f"the {model} report does not name its model"
    check_screenshot(screenshot)


def test_the_demo_report_opens_cleanly(browser, tmp_path):
    from pogm.demo import run_demo

    run = tmp_path / "demo"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_demo(out=run, epochs=2)  # writes its own report.html
    report_opens_cleanly(browser, run, "m2", tmp_path / "demo-report.png")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_report_of_a_tiny_run_opens_cleanly(browser, tmp_path, family):
    run = tmp_path / family
    code, err = quietly(["train", *FAMILIES[family], "--out", str(run), *QUIET])
    assert code == 0, err
    code, err = quietly(["report", str(run)])
    assert code == 0, err
    report_opens_cleanly(browser, run, FAMILIES[family][0], tmp_path / f"{family}-report.png")
