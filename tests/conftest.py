"""Shared fixtures: one model cache per test session (the default embedder is exported once)."""

from __future__ import annotations

import itertools
import os
import signal
import time
import types
from pathlib import Path
from typing import Callable

import pytest

from edge_rap.config import Profile, Settings


# What edge-rap reads from the environment. A developer's shell may set any of them (another home or model cache,
# a Jetson profile, a pixel limit): no test may see them, nor read or write the real home by default.
EDGE_RAP_ENV = ("EDGE_RAP_HOME", "EDGE_RAP_MODELS", "EDGE_RAP_DEVICE", "EDGE_RAP_MAX_MEGAPIXELS",
                "EDGE_RAP_SERVE_HOSTS")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch) -> None:
    """Every test starts with none of edge-rap's variables but a default home of its own (the `settings`
    fixture and the tests themselves set their own on top)."""
    for name in EDGE_RAP_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "default-home"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """The default embedders, exported once (the explicit step `edge-rap models prepare` takes). Where
    EDGE_RAP_TEST_MODELS names a prepared cache, its default embedders (and negative bank, if computed) are
    copied instead: a host that cannot export in reasonable time (an emulated ARM chroot without torch:
    tools/arm_chroot_tests.sh) tests the same files, which are checked against their sha256 and export version
    as any cache is."""
    import os
    import shutil

    from edge_rap.models.cache import DEFAULT_EMBEDDERS, ModelCache

    root = tmp_path_factory.mktemp("models")
    prepared = os.environ.get("EDGE_RAP_TEST_MODELS")
    for name in (*DEFAULT_EMBEDDERS, "negatives") if prepared else ():
        if (Path(prepared) / name).is_dir():
            shutil.copytree(Path(prepared) / name, root / name)
    ModelCache(root).ensure_default("efficientnet-lite0-int8")
    return root


@pytest.fixture(scope="session")
def embedder(model_cache):
    from edge_rap.models.cache import ModelCache
    from edge_rap.perceive.embed import OnnxImageEmbedder

    return OnnxImageEmbedder(ModelCache(model_cache).manifest("efficientnet-lite0-int8"), "cpu")


@pytest.fixture
def settings(tmp_path, model_cache, monkeypatch) -> Settings:
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(model_cache))
    return Settings(home=tmp_path / "home", memory=tmp_path / "memory", models=model_cache, profile=Profile())


@pytest.fixture
def dataset(tmp_path) -> Path:
    """`eval`'s dataset: a folder per concept (tests/concept_folders.py)."""
    from concept_folders import concept_folders

    return concept_folders(tmp_path / "dataset")


@pytest.fixture
def run(settings, capsys):
    """edge-rap ARGS --memory <tmp>: (exit status, stdout, stderr); a traceback fails the test."""
    from edge_rap import cli

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = cli.main([*map(str, argv), "--memory", str(settings.memory)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return rc, out, err

    return run


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random GGUF language model and its vision projector (tools/make_tiny_models.py), made once."""
    import sys

    pytest.importorskip("gguf")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from make_tiny_models import make_tiny_models

    return make_tiny_models(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture
def temp_folder(tmp_path, monkeypatch) -> Path:
    """A temporary folder of the test's own (as $TMPDIR), in which this process's folder (edge_rap/scratch.py)
    is made anew at its first use."""
    import os
    import tempfile

    from edge_rap import scratch

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(scratch, "_held", None)
    yield temp
    if scratch._held is not None:
        os.close(scratch._held.lock_fd)


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_raises():
    """Ctrl-C raising KeyboardInterrupt in every test, as in a Python started with SIGINT not ignored: a run put in
    the background by a shell without job control (`pytest ... &` in a script) inherits it ignored, which a command
    keeps (`nohup`), and each test of a Ctrl-C saw its command finish: exit 0, not 130."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before if before is not None else signal.SIG_DFL)


@pytest.fixture
def stop_signal() -> Callable[[int], None]:
    """Sends this process a SIGTERM or SIGHUP (as `kill`, a shutdown or a closed terminal would), with both set to fail
    the test meanwhile where the code under test leaves them to the handler it found: by default they ended pytest."""

    def unhandled(signum: int, frame) -> None:
        raise AssertionError(f"{signal.Signals(signum).name} reached the handler the command found")

    before = {sig: signal.signal(sig, unhandled) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield lambda signum: os.kill(os.getpid(), signum)
    for sig, handler in before.items():
        signal.signal(sig, handler)


TOOLS = Path(__file__).resolve().parents[1] / "tools"


@pytest.fixture
def import_tool(monkeypatch) -> Callable[[str], object]:
    """A script of tools/ imported afresh as a module (its own imports, `timing`, found beside it)."""
    import importlib
    import sys

    def load(name: str):
        monkeypatch.syspath_prepend(str(TOOLS))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return importlib.import_module(name)

    return load


@pytest.fixture
def ticking_parse_clock(monkeypatch) -> None:
    """A clock for `parse_since` that moves on at every reading, as a real one does between two: a `since` and an
    `until` each given as `1d` then differ unless read against one `now`."""
    from edge_rap.daemon import events

    ticks, clock = itertools.count(time.time(), 0.001), types.ModuleType("time")
    clock.__dict__.update(vars(time), time=lambda: next(ticks))
    monkeypatch.setattr(events, "time", clock)
