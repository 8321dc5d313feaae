"""The device profile: every section, key and type checked up front with one line naming the key and the file,
and the settings it holds (threads) reach the parts that use them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edge_rap import cli
from edge_rap.config import Profile, load_profile
from edge_rap.errors import EdgeRapError

BAD_PROFILES = {
    "threads-word": ('[embedder]\nthreads = "four"\n', "threads"),
    "threads-bool": ("[embedder]\nthreads = true\n", "threads"),
    "top_k-word": ('[retrieve]\ntop_k = "abc"\n', "top_k"),
    "max_candidates-list": ("[retrieve]\nmax_candidates = [1, 2]\n", "max_candidates"),
    "embedder-number": ("[embedder]\nmodel = 5\n", "model"),
    "provider-number": ("[embedder]\nprovider = 1\n", "provider"),
    "vlm-n_ctx-float": ("[vlm]\nn_ctx = 4096.5\n", "n_ctx"),
    "vlm-model-table": ("[vlm.model]\nx = 1\n", "model"),
    "unknown-section": ("[retreive]\ntop_k = 3\n", "retreive"),
    "unknown-key": ("[retrieve]\ntopk = 3\n", "topk"),
    "section-not-a-table": ('embedder = "efficientnet-lite0-int8"\n', "embedder"),
    "not-utf8": (b"[device]\nname = \"caf\xe9\"\n", "UTF-8"),
}


def _write(tmp_path, text: str | bytes):
    path = tmp_path / "bad.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("kind", list(BAD_PROFILES))
def test_bad_profile_is_one_line_naming_the_key_and_file(kind, tmp_path, settings, capsys, monkeypatch):
    text, key = BAD_PROFILES[kind]
    path = _write(tmp_path, text)
    with pytest.raises(EdgeRapError, match=key) as e:
        load_profile(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)

    for argv, env in ((["--device", str(path)], None), ([], str(path))):
        if env:
            monkeypatch.setenv("EDGE_RAP_DEVICE", env)
        capsys.readouterr()
        rc = cli.main(["concepts", "--memory", str(settings.memory), *argv])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("edge-rap: ") and err.count("\n") == 1 and "Traceback" not in err
        assert key in err and str(path) in err
    assert "EDGE_RAP_DEVICE" in err  # says where the profile came from


def test_shipped_profiles_pass_the_checks():
    for name in ("x86-cpu", "x86-cuda", "jetson-orin"):
        assert load_profile(name).name == name
    assert load_profile("jetson-orin").threads == 4


def test_profile_threads_reach_the_embedder_session(settings):
    from edge_rap.app import open_embedder

    embedder = open_embedder(replace(settings, profile=Profile(threads=2)))
    assert embedder.session.inner.get_session_options().intra_op_num_threads == 2


def test_profile_threads_reach_the_detector_and_face_sessions(settings, monkeypatch):
    import edge_rap.app as app
    from edge_rap.perceive import detect, faces, owl

    seen: list[int] = []

    def capture(path, provider="auto", threads=0):
        seen.append(threads)
        raise EdgeRapError("captured")

    for module in (detect, owl):
        monkeypatch.setattr(module, "open_session", capture)
    monkeypatch.setattr("edge_rap.runtime.open_session", capture)
    monkeypatch.setattr(faces, "packaged_file", lambda package, name: settings.models / name)
    monkeypatch.setattr(faces, "_existing", lambda path, what: path)
    manifest = type("M", (), {"role": "detector", "name": "d", "output": {"format": "yolov8"}, "input": {},
                              "file_path": lambda self, role: settings.models / "d.onnx"})()
    monkeypatch.setattr(app, "ModelCache", lambda root: type("C", (), {"manifest": lambda self, n: manifest})())
    threaded = replace(settings, profile=Profile(threads=3))
    with pytest.raises(EdgeRapError, match="captured"):
        app.open_detector(threaded, "d")
    assert app.face_loader(threaded)() is None  # the capture makes loading fail; the log says so
    assert seen == [3, 3]
