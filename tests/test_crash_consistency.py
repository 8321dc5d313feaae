"""A writer killed (SIGKILL) at random moments never leaves the memory inconsistent: every listed concept is
recognised from its own photos, every photo file exists, and the index holds exactly the stored vectors."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from scenes import scene_file

from edge_rap.app import open_memory
from edge_rap.perceive.images import read_image_file
from edge_rap.memory.index import index_files
from edge_rap.memory.store import Store
from edge_rap.retrieve import Retriever

WRITER = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from scenes import scene_file
from edge_rap.app import open_memory
from edge_rap.config import Profile, Settings

tests, memory, models, photos = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
run = int(sys.argv[5])
settings = Settings(home=memory.parent, memory=memory, models=models, profile=Profile())
mem = open_memory(settings)
mem.negatives.vectors  # loaded from the cache, not recomputed
print("ready", flush=True)
i = 0
while True:
    name = f"r{run}c{i}"
    print(f"begin {name}", flush=True)
    mem.remember(name, [scene_file(photos, run * 1000 + i)], f"concept {i} of run {run}", "thing")
    if i % 4 == 3:
        mem.add_views(name, [scene_file(photos, run * 1000 + 500 + i)])
    if i % 3 == 2:
        mem.forget(f"r{run}c{i - 1}")
    if i % 5 == 4:
        mem.edit(name, description=f"edited {i}")
    print(f"done {name}", flush=True)
    i += 1
"""


def check_consistent(root: Path, embedder, recognise_prefix: str | None = None, sample: int = 4) -> int:
    """Every invariant a reader relies on; returns the number of concepts.

    Recognition (the slow part) is checked for the concepts whose names start with `recognise_prefix` (those
    the last writer touched) and a few others; files, index keys and vectors are checked for all."""
    from usearch.index import Index

    store = Store(root, readonly=True)
    try:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        concepts = store.concepts()
        ids = {c.id for c in concepts}
        space = embedder.space.name
        row = store.space(space)
        db_keys, _ = store.vectors(space)
        if row is None or row[4] is None:
            assert not concepts and len(db_keys) == 0
            return 0
        index_keys: Counter[int] = Counter()
        for name in index_files(row[4]):
            index_path = root / "index" / name
            assert index_path.is_file(), f"an index file the database names is missing: {index_path}"
            index_keys.update(int(k) for k in Index.restore(str(index_path)).keys)
        assert set(index_keys) <= ids, f"index keys of concepts that do not exist: {set(index_keys) - ids}"
        assert index_keys == Counter(int(k) for k in db_keys), "index and database disagree"

        retriever = Retriever(store, embedder)
        others = [c.name for c in concepts if recognise_prefix is not None and not c.name.startswith(recognise_prefix)]
        to_recognise = {c.name for c in concepts} - set(others) | set(random.Random(len(concepts)).sample(
            others, min(sample, len(others))))
        for concept in concepts:
            views = store.views(concept.id)
            assert views and concept.views == len(views), concept
            assert concept.id in index_keys, f"<{concept.name}> has no vectors in the index"
            for view in views:
                assert Path(view.image_path).is_file(), f"<{concept.name}>: photo missing: {view.image_path}"
                if concept.name not in to_recognise:
                    continue
                hits = retriever.recognize(read_image_file(view.image_path).image).hits
                assert hits and hits[0].concept.name == concept.name, (
                    concept.name, [(h.concept.name, h.score) for h in hits])
        # no temp file of a finished writer may be taken for a live index
        live = [n for (listed,) in store.db.execute("SELECT index_file FROM spaces") for n in index_files(listed)]
        assert all(not name.endswith(".tmp") for name in live)
        return len(concepts)
    finally:
        store.close()


READER = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from fakes import fake_memory
from edge_rap.perceive.images import read_image_file

memory = fake_memory(Path(sys.argv[2]), readonly=True)
view = memory.view()
checks, counts, errors = 0, [], []
print("ready", flush=True)
while not Path(sys.argv[3]).exists():
    concepts = memory.concepts()
    counts.append(len(concepts))
    for concept in concepts:  # everything listed is whole: photos on disk, vectors indexed, recognised
        views = memory.store.views(concept.id)
        if not views:
            errors.append(f"{concept.name}: no views")
            continue
        try:
            pixels = read_image_file(views[0].image_path).image.pixels
        except Exception as e:
            errors.append(f"{concept.name}: {e}")
            continue
        hits = view.search(memory.embedder.embed([pixels])[0], 5)
        if not hits or hits[0].concept_id != concept.id:
            errors.append(f"{concept.name}: not recognised ({hits[:2]})")
        checks += 1
print(json.dumps({"checks": checks, "counts": sorted(set(counts)), "errors": errors[:10]}), flush=True)
"""


def test_a_reader_process_sees_a_consistent_memory_while_another_writes(tmp_path):
    """A reader in one process lists and recognises while this process remembers: every concept it lists
    is whole, at every moment (stand-in embedder: the plumbing is what is checked)."""
    import json

    from fakes import fake_memory

    root, photos, stop = tmp_path / "memory", tmp_path / "photos", tmp_path / "stop"
    writer = fake_memory(root)
    writer.remember("c0", [scene_file(photos, 0)])
    script = tmp_path / "reader.py"
    script.write_text(READER)
    reader = subprocess.Popen([sys.executable, str(script), str(Path(__file__).resolve().parent), str(root),
                               str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        for i in range(1, 16):
            writer.remember(f"c{i}", [scene_file(photos, i)])
            if i % 4 == 0:
                writer.add_views(f"c{i}", [scene_file(photos, 100 + i)])
            time.sleep(0.05)
        stop.touch()
        out, err = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == []
    assert len(result["counts"]) >= 3, result  # it read while the memory grew, not only before or after
    assert result["checks"] > 0
    writer.close()


def test_killed_writer_leaves_a_consistent_memory(settings, embedder, tmp_path):
    open_memory(settings, embedder).negatives.vectors  # the bank is computed once, into the shared cache
    tests_dir = Path(__file__).resolve().parent
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    photos = tmp_path / "photos"
    env = dict(os.environ, EDGE_RAP_MODELS=str(settings.models), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    rng = random.Random(20241017)
    deadline = time.monotonic() + 30
    runs = killed_in_an_operation = 0
    committed_total = 0
    for run in range(10):
        if run >= 6 and time.monotonic() > deadline:
            break
        log = (tmp_path / f"writer{run}.err").open("w")
        proc = subprocess.Popen([sys.executable, str(script), str(tests_dir), str(settings.memory),
                                 str(settings.models), str(photos), str(run)],
                                stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        try:
            line = proc.stdout.readline()
            assert line.strip() == "ready", (tmp_path / f"writer{run}.err").read_text()
            time.sleep(rng.uniform(0.05, 1.5))
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        assert alive, "the writer stopped by itself: " + (tmp_path / f"writer{run}.err").read_text()
        lines = proc.stdout.read().splitlines()
        proc.stdout.close()
        runs += 1
        killed_in_an_operation += bool(lines) and lines[-1].startswith("begin")  # not between two
        committed_total += sum(ln.startswith("done") for ln in lines)
        check_consistent(settings.memory, embedder, f"r{run}c")

    assert runs >= 6
    # The writer spends nearly all its time inside an operation; were most kills between two, the writer
    # would have been idle or stuck and the kills would have tested nothing.
    assert killed_in_an_operation >= runs // 2, (killed_in_an_operation, runs)
    assert committed_total > 0, "no writer got far enough to commit anything: the test proved nothing"
    # a writer can open the memory after all that and keep going
    mem = open_memory(settings, embedder)
    count = len(mem.concepts())
    mem.remember("after-the-crashes", [scene_file(photos, 99_999)])
    assert len(mem.concepts()) == count + 1
    assert check_consistent(settings.memory, embedder, "after-") == count + 1


CLOSE_LAST = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute(sys.argv[2]); db.commit(); "
              "db.close()")


def _another_process_visits(database: Path, sql: str) -> None:
    """Another process runs `sql` and closes (a CLI command): its close checkpoints and deletes the -wal where it finds
    no other process holding the database."""
    subprocess.run([sys.executable, "-c", CLOSE_LAST, str(database), sql], check=True)


def test_a_second_store_in_a_process_keeps_its_first_ones_commits_seen_by_others(tmp_path):
    """A process with a writer's connection (serve, run) that opened the memory once more (the household's store
    beside its memory's, a backup's reader) had its SQLite locks dropped by the second's readability check (a
    descriptor of the database opened and closed): the next CLI command's close deleted the -wal the first wrote
    on, and its later commits were lost to every other process (then the database damaged)."""
    root = tmp_path / "memory"
    writer = Store(root)
    insert = "INSERT INTO concepts (name, category, description, created, updated) VALUES ('{}', '', '', 0, 0)"
    with writer.transaction() as db:
        db.execute(insert.format("before"))
    Store(root, readonly=True).close()
    _another_process_visits(root / "memory.sqlite", insert.format("theirs"))
    with writer.transaction() as db:
        db.execute(insert.format("after"))
    seen = subprocess.run([sys.executable, "-c", "import sqlite3, sys; print(sorted(r[0] for r in sqlite3.connect("
                           "sys.argv[1]).execute('SELECT name FROM concepts')))", str(root / "memory.sqlite")],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "['after', 'before', 'theirs']"
    writer.close()


def test_a_reader_of_the_event_log_in_the_daemon_keeps_its_writers_events_seen_by_others(tmp_path):
    """The same for the event log: a backup in the daemon (its own reader of the log) dropped the logger's locks."""
    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    root = tmp_path / "memory"
    root.mkdir()
    daemon = EventLog(root)
    daemon.add(Event("arrived", "bo", "den", 0.0, 1.0))
    reader = EventLog(root, readonly=True)  # (the backup's copy of it opens one)
    reader.query()
    reader.close()
    _another_process_visits(root / "events.sqlite", "SELECT COUNT(*) FROM events")
    daemon.add(Event("left", "bo", "den", 1.0, 1.0))
    seen = subprocess.run([sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
                           "'SELECT COUNT(*) FROM events').fetchone()[0])", str(root / "events.sqlite")],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "2"
    daemon.close()


def _written_not_merged(root: Path):
    """A writer of the memory and of its event log, left open with a concept and an event still in their -wal."""
    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    writer = Store(root)
    with writer.transaction() as db:
        db.execute("INSERT INTO concepts (name, category, description, created, updated) VALUES ('bo', '', '', 0, 0)")
    log = EventLog(root)
    log.add(Event("arrived", "bo", "den", 0.0, 1.0))
    return writer, log


def _mode_ro_fails(monkeypatch, message: str) -> list[str]:
    """Every reader's `mode=ro` of the memory and the event log fails with `message`; what is opened is listed."""
    import sqlite3

    from edge_rap.daemon import events as events_module

    opened: list[str] = []

    def failing(connect):
        def connect_but_not_mode_ro(target, uri=False):
            opened.append(str(target))
            if "mode=ro" in str(target):
                raise sqlite3.OperationalError(message)
            return connect(target, uri=uri)
        return connect_but_not_mode_ro

    monkeypatch.setattr(Store, "_connect", staticmethod(failing(Store._connect)))
    monkeypatch.setattr(events_module, "_connect", failing(events_module._connect))
    return opened


def test_a_reader_whose_database_is_locked_too_long_says_so_and_copies_nothing(tmp_path, monkeypatch):
    """A reader's `mode=ro` that failed in a writable folder (a lock held past the busy timeout) fell back to the
    read-only folder's ways: a copy of the live database and its -wal (whose close dropped this process's locks on
    it, as above) or an `immutable=1` read of a database being written."""
    from edge_rap.daemon.events import EventLog
    from edge_rap.errors import EdgeRapError

    root = tmp_path / "memory"
    writer, log = _written_not_merged(root)
    opened = _mode_ro_fails(monkeypatch, "database is locked")
    with pytest.raises(EdgeRapError, match="another process has been changing the memory for 30 s"):
        Store(root, readonly=True)
    with pytest.raises(EdgeRapError) as said:
        EventLog(root, readonly=True).query()
    assert str(said.value).endswith("events.sqlite: cannot read the event log (database is locked)")
    assert all("mode=ro" in target for target in opened), opened  # no copy, no immutable read
    log.close()
    writer.close()


def test_a_reader_that_may_not_open_another_accounts_shm_in_a_folder_it_may_write_reads_the_memory(tmp_path,
                                                                                                monkeypatch):
    """The daemon's account owns the memory and its -shm (0600) in a folder the user's group may write: the user's
    `mode=ro` fails as "unable to open database file" (as a -shm a crashed writer of another account left does).
    Since readers fell back only in folders they may not write, `concepts` and `events` failed there; the commits
    still in the -wal are read from a private copy, as in a read-only folder."""
    from edge_rap.daemon.events import EventLog

    root = tmp_path / "memory"
    writer, log = _written_not_merged(root)
    _mode_ro_fails(monkeypatch, "unable to open database file")
    reader = Store(root, readonly=True)
    events = EventLog(root, readonly=True)
    try:
        assert [c.name for c in reader.concepts()] == ["bo"]
        assert [e.kind for e in events.query()] == ["arrived"]
    finally:
        reader.close()
        events.close()
        log.close()
        writer.close()
