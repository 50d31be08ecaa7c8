"""mobile.web_demo: the page in headless Chromium against the Python LiteRT interpreter.

Needs Debian's ``chromium`` and ``chromium-driver`` and ``npm ci --prefix mobile/web``
(``.ci/run`` installs both); nothing is downloaded while the tests run.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from mobile import parity, web_demo
from yoto_tf import image_sources
from yoto_tf.style_transfer.loss_space import strength_range, style_transfer_loss_space, with_strength

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (  # headless, offline: no sandbox (CI runs as root), nothing phones home
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1100,720",
)
SIZE = 64
TOLERANCE = 1 / 255
"""Max abs error of the page's output canvas (uint8 / 255) vs the Python interpreter's
float output: the canvas rounds to uint8 like np.round (up to 0.5 / 255), plus up to
0.5 / 255 for float32 differences between the WebAssembly and native XNNPack kernels
(summation order; about 1e-6 in practice, so this margin is generous). Measured: 0.50 / 255,
with 0 or 1 of the 12288 values differing from the rounded Python output."""
MAX_ROUNDING_FLIPS = 0.01
"""Fraction of uint8 values allowed to differ from np.round(Python output * 255)."""
MIN_STRENGTH_EFFECT = 0.05
"""Mean abs difference the outputs at minimum and maximum strength must exceed."""
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def page_dir(tmp_path_factory):
    """The page of the shipped painters4 model at SIZE x SIZE (converted with parity gate)."""
    out = str(tmp_path_factory.mktemp("web_demo"))
    try:
        web_demo.build_page("painters4", out, image_size=SIZE, log=lambda line: None)
    except web_demo.WebDemoError as error:
        pytest.fail(str(error))
    return out


@contextlib.contextmanager
def serving(directory):
    """Serves ``directory`` on a free localhost port; yields the page's URL."""
    server = web_demo.make_server(directory, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.isfile(path)]
    if missing:
        pytest.fail(f"{missing} not found: apt-get install -y chromium chromium-driver "
                    "(as .ci/run does).")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with Service(path): selenium-manager fetches nothing
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def _state(browser):
    return browser.execute_script(
        "const box = document.getElementById('error');"
        "return {busy: document.body.dataset.busy, runs: Number(document.body.dataset.runs),"
        " error: box.hidden ? null : box.textContent};"
    )


def _wait(browser, runs_before, timeout=60):
    """Waits until the page finished a new run or stopped with an error; returns its state."""
    WebDriverWait(browser, timeout).until(
        lambda b: (lambda s: s["busy"] == "false" and (s["runs"] > runs_before or s["error"]))(
            _state(b)))
    return _state(browser)


def _canvas(browser, canvas_id):
    """The canvas's pixels, uint8 [H, W, 3]."""
    rgba = browser.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);",
        canvas_id,
    )
    return np.asarray(rgba, np.uint8).reshape(SIZE, SIZE, 4)[..., :3]


def _config(page_dir):
    with open(os.path.join(page_dir, web_demo.CONFIG_FILE)) as f:
        return json.load(f)


def test_page_matches_python_litert_at_min_and_max_strength(page_dir, browser):
    config = _config(page_dir)
    sample = np.asarray(Image.open(os.path.join(page_dir, config["sample"])).convert("RGB"))
    with open(os.path.join(page_dir, config["model_file"]), "rb") as f:
        runner = parity.signature_runner(f.read(), "stylize")
    space = style_transfer_loss_space()
    low, high = strength_range(space)
    with serving(page_dir) as url:
        browser.get(url)
        state = _wait(browser, 0)
        assert state["error"] is None, state["error"]
        # The page feeds exactly the sample's pixels (no resampling, no colour conversion).
        np.testing.assert_array_equal(_canvas(browser, "input"), sample)
        assert Select(browser.find_element(By.ID, "style")).first_selected_option.text == (
            "starry_night")
        slider = browser.find_element(By.ID, "slider-strength")
        outputs = {}
        for key, strength in ((Keys.HOME, low), (Keys.END, high)):
            runs = _state(browser)["runs"]
            slider.send_keys(key)
            state = _wait(browser, runs)
            assert state["error"] is None, state["error"]
            run = browser.execute_script("return window.yotoDemo.lastRun;")
            lam = np.asarray(run["lossWeights"], np.float32)
            # The page's strength knob is loss_space.with_strength at the ends of its range.
            np.testing.assert_allclose(lam, with_strength(space, strength), rtol=1e-5)
            expected = runner(
                image=(sample.astype(np.float32) / 255.0)[None], loss_weights=lam[None],
                style_index=np.array([run["styleIndex"]], np.int32),
            )["stylized"][0]
            outputs[strength] = _canvas(browser, "output").astype(np.float32) / 255.0
            error = np.abs(outputs[strength] - expected).max()
            flips = np.mean(np.round(outputs[strength] * 255) != np.round(expected * 255))
            print(f"strength {strength:g}: browser vs Python LiteRT max abs error "
                  f"{error * 255:.2f}/255, {flips:.2%} of values rounded differently, "
                  f"page run {run['ms']:.0f} ms")
            assert error <= TOLERANCE
            assert flips <= MAX_ROUNDING_FLIPS
        effect = np.abs(outputs[low] - outputs[high]).mean()
        print(f"mean abs difference min vs max strength: {effect:.3f}")
        assert effect > MIN_STRENGTH_EFFECT


def test_page_switches_style_and_takes_an_uploaded_photo(page_dir, browser):
    with serving(page_dir) as url:
        browser.get(url)
        _wait(browser, 0)
        sample_input, first = _canvas(browser, "input"), _canvas(browser, "output")
        runs = _state(browser)["runs"]
        Select(browser.find_element(By.ID, "style")).select_by_visible_text("great_wave")
        state = _wait(browser, runs)
        assert state["error"] is None, state["error"]
        assert browser.execute_script("return window.yotoDemo.lastRun.styleIndex;") == 1
        assert np.abs(_canvas(browser, "output").astype(int) - first).mean() > 5
        # A 600x400 photo, centre-cropped and resized to SIZE x SIZE in the browser.
        coffee = next(p for p in image_sources.builtin_image_paths() if "coffee" in p)
        runs = _state(browser)["runs"]
        browser.find_element(By.ID, "upload").send_keys(coffee)
        state = _wait(browser, runs)
        assert state["error"] is None, state["error"]
        assert np.abs(_canvas(browser, "input").astype(int) - sample_input).mean() > 10


def test_page_opened_as_a_file_says_to_serve_it(page_dir, browser):
    browser.get("file://" + os.path.join(page_dir, "index.html"))
    message = browser.find_element(By.ID, "error").text
    assert "Open this page through a web server" in message


def _broken_copy(page_dir, tmp_path, *patterns):
    """A copy of the page without the files matching ``patterns``."""
    copy = str(tmp_path / "page")
    shutil.copytree(page_dir, copy, ignore=shutil.ignore_patterns(*patterns))
    return copy


def _error_message(browser, url):
    browser.get(url)
    state = _wait(browser, 0)
    assert state["runs"] == 0
    return state["error"] or ""


def test_page_reports_a_missing_model_file(page_dir, browser, tmp_path):
    model_file = _config(page_dir)["model_file"]
    with serving(_broken_copy(page_dir, tmp_path, "*.tflite")) as url:
        message = _error_message(browser, url)
    assert f"Model file {model_file} not found (HTTP 404)" in message
    assert browser.find_element(By.ID, "error").is_displayed()


def test_page_reports_a_webassembly_load_failure(page_dir, browser, tmp_path):
    with serving(_broken_copy(page_dir, tmp_path, "*.wasm")) as url:
        message = _error_message(browser, url)
    assert "LiteRT.js WebAssembly runtime failed to load" in message


def test_cli_says_how_to_install_litert_js_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mobile.web_demo", "--model", "painters4", "--out",
         str(tmp_path / "page"), "--node_modules", str(tmp_path / "nowhere")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "npm ci --prefix mobile/web" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "page")


def test_build_page_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'no_such_model'"):
        web_demo.build_page("no_such_model", str(tmp_path))
    with pytest.raises(web_demo.WebDemoError, match="does not exist"):
        web_demo.build_page(str(tmp_path / "missing.tflite"), str(tmp_path))
