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
    "min_face-word": ('[faces]\nmin_face = "small"\n', "min_face"),
    "min_face-tiny": ("[faces]\nmin_face = 4\n", "min_face"),
    "batch-zero": ("[embedder]\nbatch = 0\n", "batch"),
    "threads-huge": ("[embedder]\nthreads = 100000\n", "threads must be 0"),
    "vlm-threads-huge": ("[vlm]\nthreads = 100000\n", "threads"),
    "embedder-empty": ('[embedder]\nmodel = ""\n', "model must be a non-empty string"),
    "providers-empty": ("[embedder]\nproviders = []\n", "providers"),
    "snapshot_days-nan": ("[limits]\nsnapshot_days = nan\n", "snapshot_days must be a finite number"),
    "fps-inf": ("[capture]\nfps = inf\n", "fps"),
    "events_days-negative": ("[limits]\nevents_days = -1\n", "events_days must be 0 or more, not -1"),
    "width-negative": ("[capture]\nwidth = -5\n", "width must be 0 or more, not -5"),
    "snapshot_count-zero": ("[limits]\nsnapshot_count = 0\n", "snapshot_count must be 1 or more, not 0"),
    "max_tokens-zero": ("[vlm]\nmax_tokens = 0\n", "max_tokens must be 1 or more, not 0"),
    "n_gpu_layers-below-all": ("[vlm]\nn_gpu_layers = -2\n", "n_gpu_layers must be -1 or more, not -2"),
    "top_k-zero": ("[retrieve]\ntop_k = 0\n", "top_k must be 1 or more, not 0"),
    "references-typo": ('[vlm]\nreferences = "imag"\n', "references must be one of image, text, not 'imag'"),
    "provider-unknown": ('[embedder]\nproviders = ["gpu"]\n',
                         "provider must be one of auto, cpu, cuda, tensorrt, not 'gpu'"),
    "section-a-string": ('vlm = "x"\n', "vlm must be a section"),
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
    for name in ("x86-cpu", "x86-cuda", "jetson-orin", "jetson-orin-nano", "jetson-agx-orin"):
        profile = load_profile(name)
        assert profile.name == name and profile.capture_width > 0 and profile.rss_mb > 0
        assert profile.provider[-1] == "cpu"  # the CPU is always the last resort
    assert load_profile("jetson-orin").threads == 4
    assert load_profile("x86-cpu").events_days == 365


def test_the_profile_sets_the_smallest_face_found(settings, tmp_path):
    from edge_rap.app import face_loader

    assert load_profile(str(_write(tmp_path, "[faces]\nmin_face = 48\n"))).min_face == 48
    models = face_loader(replace(settings, profile=Profile(min_face=48)))()
    if models is None:
        pytest.skip("the face models are not installed (pip install 'edge_rap[faces]')")
    assert models.frame_min_face == 48
    assert load_profile("jetson-orin-nano").vlm.n_gpu_layers == -1


def _fake_root(tmp_path, files: dict[str, bytes]):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize("files, expected", [
    ({"etc/nv_tegra_release": b"# R36", "proc/device-tree/model": b"NVIDIA Jetson Orin Nano Developer Kit\x00"},
     "jetson-orin-nano"),
    ({"etc/nv_tegra_release": b"# R36", "proc/device-tree/model": b"NVIDIA Jetson AGX Orin Developer Kit\x00"},
     "jetson-agx-orin"),
    ({"etc/nv_tegra_release": b"# R35"}, "jetson-orin"),
    ({"proc/driver/nvidia/version": b"NVRM version: 550"}, "x86-cuda"),
    ({}, "x86-cpu"),
])
def test_auto_detection_picks_a_jetson_then_cuda_then_the_cpu_and_says_why(tmp_path, files, expected):
    from edge_rap.config import detect_profile

    name, reason = detect_profile(_fake_root(tmp_path, files))
    assert name == expected and reason
    load_profile(name)  # every name detection can give is a shipped profile


def test_device_auto_is_the_detected_profile_with_its_reason(monkeypatch):
    monkeypatch.delenv("EDGE_RAP_DEVICE", raising=False)
    profile = load_profile("auto")
    assert profile.name == "x86-cpu" or profile.name.startswith(("jetson", "x86-cuda"))
    assert profile.reason and "named with" not in profile.reason


def test_profile_batch_reaches_the_embedder(settings, tmp_path):
    from edge_rap.app import open_embedder

    assert load_profile("jetson-orin-nano").embed_batch == 4 and load_profile("x86-cpu").embed_batch == 16
    assert open_embedder(replace(settings, profile=Profile(embed_batch=3))).batch == 3


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
    monkeypatch.setattr("edge_rap.models.sessions.open_session", capture)
    monkeypatch.setattr(faces, "packaged_file", lambda package, name: settings.models / name)
    monkeypatch.setattr(faces, "_existing", lambda path, what: path)
    manifest = type("M", (), {"role": "detector", "name": "d", "output": {"format": "yolov8"}, "input": {},
                              "file_path": lambda self, role: settings.models / "d.onnx",
                              "require_role": lambda self, role: None})()
    monkeypatch.setattr(app, "ModelCache",
                        lambda root: type("C", (), {"manifest": lambda self, n, role=None: manifest})())
    threaded = replace(settings, profile=Profile(threads=3))
    with pytest.raises(EdgeRapError, match="captured"):
        app.open_detector(threaded, "d")
    assert app.face_loader(threaded)() is None  # the capture makes loading fail; the log says so
    assert seen == [3, 3]


def test_a_device_profile_not_found_names_the_ones_there_are(monkeypatch):
    # "device profile 'jetson-nano' not found (…/jetson-nano.toml)" left the user to list a folder to learn the names.
    monkeypatch.delenv("EDGE_RAP_DEVICE", raising=False)
    with pytest.raises(EdgeRapError) as caught:
        load_profile("jetson-nano")
    message = str(caught.value)
    assert "'jetson-nano' not found" in message and "jetson-orin-nano" in message and "x86-cpu" in message
    assert "\n" not in message


def test_spaces_around_a_profile_name_are_not_part_of_it(tmp_path, monkeypatch):
    # EDGE_RAP_DEVICE=" x86-cpu" was "device profile ' x86-cpu' not found"; a .toml path keeps its spaces
    monkeypatch.setenv("EDGE_RAP_DEVICE", " jetson-orin-nano\t")
    assert load_profile().name == "jetson-orin-nano"
    assert load_profile(" x86-cpu ").name == "x86-cpu"
    monkeypatch.setenv("EDGE_RAP_DEVICE", " auto ")
    assert "EDGE_RAP_DEVICE" not in load_profile().reason
    monkeypatch.chdir(tmp_path)
    (tmp_path / " spaced.toml").write_text('[device]\nname = "spaced"\n')
    monkeypatch.setenv("EDGE_RAP_DEVICE", " spaced.toml")
    assert load_profile().name == "spaced"
    with pytest.raises(EdgeRapError, match="not found"):
        load_profile("spaced.toml")


def test_an_empty_model_cache_variable_is_the_default_one_not_the_current_folder(tmp_path, monkeypatch):
    from edge_rap.config import load_settings

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", "")  # the default embedder was exported into the current folder
    monkeypatch.chdir(tmp_path / "..")
    assert load_settings().models == tmp_path / "home" / "models"


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_a_blank_variable_is_one_left_unset(blank, tmp_path, monkeypatch):
    # EDGE_RAP_DEVICE=" " was a profile named " ", "not found", and EDGE_RAP_HOME=" " a folder " " in the current
    # folder; blank EDGE_RAP_SERVE_HOSTS and EDGE_RAP_MAX_MEGAPIXELS were read as unset
    from edge_rap.config import default_home, load_settings

    monkeypatch.chdir(tmp_path)
    for name in ("EDGE_RAP_HOME", "EDGE_RAP_MODELS", "EDGE_RAP_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    unset = load_settings()
    for name in ("EDGE_RAP_HOME", "EDGE_RAP_MODELS", "EDGE_RAP_DEVICE"):
        monkeypatch.setenv(name, blank)
    blanked = load_settings()
    assert (blanked.home, blanked.models, blanked.profile.name) == (unset.home, unset.models, unset.profile.name)
    assert default_home() == unset.home
