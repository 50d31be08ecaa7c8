"""The console scripts of setup.cfg (yoto-stylize, ...) name callable absl entry functions."""

import importlib.metadata
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPTS = {
    "yoto-style-transfer": "trainers.style_transfer:cli_main",
    "yoto-stylize": "trainers.stylize:cli_main",
    "yoto-compression": "trainers.compression:cli_main",
    "yoto-beta-vae": "trainers.beta_vae:cli_main",
    "yoto-convert": "mobile.convert:cli_main",
    "yoto-web-demo": "mobile.web_demo:cli_main",
}


def _console_scripts():
    entry_points = importlib.metadata.distribution("yoto_tf").entry_points
    return {ep.name: ep for ep in entry_points if ep.group == "console_scripts"}


def test_console_scripts_are_registered():
    scripts = _console_scripts()
    if not scripts:
        pytest.skip("yoto_tf installed without its entry points: re-run `pip install -e .`")
    assert {name: ep.value for name, ep in scripts.items() if name in SCRIPTS} == SCRIPTS


@pytest.mark.parametrize("target", sorted(SCRIPTS.values()))
def test_entry_point_functions_exist_and_are_callable(target):
    # One process per module: the trainers define absl flags of the same names
    # (--image_size, ...), so they cannot all be imported into one process.
    module, _, name = target.partition(":")
    check = f"import importlib; assert callable(importlib.import_module({module!r}).{name})"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                            cwd=REPO_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
