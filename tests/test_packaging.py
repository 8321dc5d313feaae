"""A normal (non-editable) install carries the device profiles and model manifests it reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_carries_the_device_profiles_and_model_manifests(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    site = tmp_path / "site"
    with zipfile.ZipFile(next((tmp_path / "dist").glob("edge_rap-*.whl"))) as wheel:
        wheel.extractall(site)
    probe = ("from edge_rap.config import PROFILE_DIR, load_profile; "
             "from edge_rap.models.vlm_registry import REGISTRY; "
             "print(load_profile('jetson-orin').name, PROFILE_DIR.parent.name, REGISTRY.exists())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["jetson-orin", "edge_rap", "True"]  # read from the installed package, not the checkout


def test_the_command_line_runs_as_a_module_either_way():
    # `python -m edge_rap.cli --help` printed nothing and exited 0: the module had no __main__ guard
    for module in ("edge_rap", "edge_rap.cli"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith("usage: edge-rap"), (module, out)
