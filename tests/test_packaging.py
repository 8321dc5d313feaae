"""A normal (non-editable) install carries the device profiles, model manifests and household page it reads at
run time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_carries_the_device_profiles_and_model_manifests(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                            "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, check=True)
    # What setuptools says it will stop doing: the license as a TOML table (builds refused after 2027-02-18), and
    # carrying the household page as data of a package whose `packages` entry does not name its folder.
    assert "SetuptoolsDeprecationWarning" not in build.stdout + build.stderr
    assert "absent from the `packages` configuration" not in build.stdout + build.stderr
    site = tmp_path / "site"
    with zipfile.ZipFile(next((tmp_path / "dist").glob("edge_rap-*.whl"))) as wheel:
        wheel.extractall(site)
        page = {n for n in wheel.namelist() if n.startswith("edge_rap/serve/static/")}
    assert page == {f"edge_rap/serve/static/{n}" for n in ("index.html", "app.js", "style.css")}
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


def _make(folder: Path, python: str, venv_python: str | None = None) -> subprocess.CompletedProcess:
    """`make -n demo PYTHON=...` in an empty folder with this checkout's Makefile, the interpreters faked (each
    prints what the Makefile's one question asks of it: its version, and whether it is 3.10 or newer)."""
    fakes = {folder / "python": python, **({folder / ".venv/bin/python": venv_python} if venv_python else {})}
    for name in ("pyproject.toml", "Makefile"):  # what .venv's rule depends on
        (folder / name).touch()
    for path, answer in fakes.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\necho {answer}\n")
        path.chmod(0o755)
    return subprocess.run(["make", "-n", "-f", str(ROOT / "Makefile"), "-C", str(folder), "demo",
                           f"PYTHON={folder / 'python'}"], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_names_a_python_too_old_in_one_line_before_anything_is_made(tmp_path):
    # a JetPack 5 Jetson's Python 3.8 made .venv, then failed in pip: "Cannot install torch==2.14.1 ...
    # ResolutionImpossible"
    out = _make(tmp_path, "3.8 False")
    assert out.returncode != 0
    assert "edge_rap needs Python 3.10 or newer" in out.stderr and "3.8: make PYTHON=python3.10" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_with_another_python_than_the_venvs_says_so(tmp_path):
    # `make PYTHON=python3.10 test` over a .venv of 3.12 ran the tests on 3.12, and said nothing
    out = _make(tmp_path, "3.10 True", venv_python="3.12")
    assert out.returncode != 0 and ".venv was made by Python 3.12" in out.stderr and "make clean first" in out.stderr
    same = _make(tmp_path, "3.12 True", venv_python="3.12")
    assert same.returncode == 0 and "pip install" in same.stdout


def test_onnxruntime_keeps_no_telemetry_to_send(tmp_path):
    # onnxruntime 1.32 queued a "ProcessInfo" event for Microsoft's collector (a device id, the OS, the CPU, the
    # program's path) in ~/.cache/Microsoft, and a session file in $TMPDIR, at every command that opened a model,
    # to send once the device is online; the README says nothing leaves the device. Seen in the soak's /tmp count.
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env |= {"HOME": str(tmp_path), "TMPDIR": str(tmp_path / "tmp"), "EDGE_RAP_HOME": str(tmp_path / "home"),
            "EDGE_RAP_MODELS": str(tmp_path / "models")}
    done = subprocess.run([sys.executable, "-m", "edge_rap", "doctor", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert '"providers"' in done.stdout, done.stderr  # onnxruntime was imported and asked
    assert not (tmp_path / ".cache" / "Microsoft").exists() and not list((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize("first, second", [("usearch.index", "onnxruntime"), ("onnxruntime", "usearch.index")])
def test_the_index_and_the_model_runtime_load_in_either_order(first, second):
    # usearch 2.26.2 to 2.26.6 (numkong inside): onnxruntime imported after it died with SIGSEGV in its own
    # initialisation (Debian 12, an Intel Xeon and qemu's Haswell alike). edge_rap imports both lazily, so the
    # order is whichever command ran first: `serve` or `run` opening the memory before the embedder would crash.
    done = subprocess.run([sys.executable, "-c", f"import {first}, {second}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
