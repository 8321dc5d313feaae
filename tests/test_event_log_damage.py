"""A damaged event log (a torn write, a power cut on an SD card): the daemon, forget and rename set it aside with
every byte and go on in a new log holding the events still readable; readers and `doctor` say so in one line."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge_rap.daemon.events import EventLog, EventLogFull
from edge_rap.daemon.log_damage import damaged_copies
from edge_rap.errors import EdgeRapError
from edge_rap.types import Box, Event

PAGE = 4096


def logged(root: Path, count: int) -> Path:
    """A closed log of `count` events (bo and mochi coming and going), every page merged into the file."""
    log = EventLog(root)
    for k in range(count):
        log.add(Event("arrived" if k % 2 == 0 else "left", "bo" if k % 4 < 2 else "mochi", "porch", float(k),
                      1.7e9 + k, Box(1, 2, 3, 4), 0.7, "I can see <bo> on the left, asleep on the sofa.", None))
    log.close()
    return root / "events.sqlite"


def tear_a_page(path: Path) -> None:
    """A page of events in the middle of the log overwritten in place, as a torn write on an SD card leaves it."""
    data = path.read_bytes()
    leaves = [k for k in range(1, len(data) // PAGE) if data[k * PAGE] == 0x0D]  # (a table's leaf page)
    with open(path, "r+b") as f:
        f.seek(leaves[len(leaves) // 2] * PAGE)
        f.write(b"\x00\x55" * (PAGE // 2))


def events_in(root: Path) -> list[float]:
    return [e.time_s for e in EventLog(root, readonly=True).query()]


def test_a_damaged_log_is_set_aside_whole_and_a_new_one_holds_what_it_still_gives(tmp_path, caplog):
    # `run`, `forget` and `rename` stopped on it ("cannot open the event log ... move it away"), for good: a
    # daemon's at 3 am, with nobody to read the line.
    path = logged(tmp_path, 3000)
    tear_a_page(path)
    damaged = path.read_bytes()
    with pytest.raises(EdgeRapError, match="cannot read the event log .*it is damaged: "):
        EventLog(tmp_path, readonly=True).query()  # a reader changes nothing, and says so in one line
    log = EventLog(tmp_path)  # the daemon starts
    log.add(Event("arrived", "bo", "porch", 5000.0, 1.8e9))
    [copy] = damaged_copies(path)
    assert copy.read_bytes() == damaged  # every byte
    kept = events_in(tmp_path)
    assert len(kept) > 2900 and kept[:10] == [float(k) for k in range(10)] and kept[-2:] == [2999.0, 5000.0]
    assert kept == sorted(kept)  # those after the torn page too, in their order, before the new one
    assert caplog.text.count("was damaged") == 1 and f"set aside as {copy.name}, every byte kept" in caplog.text
    assert "event log started with" in caplog.text and "\n" not in caplog.messages[-1]


def test_a_file_system_without_locks_still_opens_and_sets_aside_the_log(tmp_path, monkeypatch):
    # An NFS share without its lock daemon answers flock with ENOLCK: the log (and the daemon) stopped on it.
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    path = logged(tmp_path, 300)
    tear_a_page(path)
    monkeypatch.setattr(fcntl, "flock", no_locks)
    EventLog(tmp_path).add(Event("arrived", "bo", "porch", 5000.0, 1.8e9))
    assert len(damaged_copies(path)) == 1 and events_in(tmp_path)[-1] == 5000.0


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_a_log_that_is_no_database_or_cut_short_is_set_aside_too(tmp_path, damage):
    path = logged(tmp_path, 400)
    if damage == "header":
        path.write_bytes(b"\x07" * 100 + path.read_bytes()[100:])
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    EventLog(tmp_path).add(Event("arrived", "bo", "porch", 5000.0, 1.8e9))
    assert len(damaged_copies(path)) == 1 and events_in(tmp_path)[-1] == 5000.0


def test_a_copy_set_aside_before_is_never_written_over(tmp_path, monkeypatch):
    import edge_rap.memory.files as files

    monkeypatch.setattr(files.time, "strftime", lambda *args: "20261205T031500Z")  # the same second twice
    path = tmp_path / "events.sqlite"
    for text in (b"first damage", b"second damage"):
        path.write_bytes(text * 400)
        EventLog(tmp_path).close()
    assert [(p.name, p.read_bytes()[:12]) for p in damaged_copies(path)] == [
        ("events.sqlite.damaged-20261205T031500Z", b"first damage"),
        ("events.sqlite.damaged-20261205T031500Z-2", b"second damag")]


def test_the_check_finds_damage_that_a_running_writers_cached_pages_hide(tmp_path):
    # The daemon's connection reads the torn page from its own cache: it logged on into a file every other reader
    # found damaged, for as long as it ran.
    path = logged(tmp_path, 3000)
    log = EventLog(tmp_path)
    tear_a_page(path)
    log.check()
    assert len(damaged_copies(path)) == 1
    assert log.purge("mochi") > 0  # in the new log
    names = {e.name for e in EventLog(tmp_path, readonly=True).query()}
    assert names == {"bo"}


def test_rows_a_damaged_page_reads_as_are_no_events(tmp_path):
    # `events` printed "2026-12-05 05:26:20 [None] <None> None" for each row of a page overwritten with 0xff, and
    # "where is Bo?" answered "I haven't seen <bo> yet".
    db = sqlite3.connect(tmp_path / "events.sqlite")  # what a page of garbage read as, in a table without checks
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind, name, camera, time_s, wall, box, score, said, "
               "snapshot, watch)")
    db.execute("INSERT INTO events (id) VALUES (9)")
    db.commit()
    db.close()
    with pytest.raises(EdgeRapError, match=r"rows no event log writes\); it is damaged: "):
        EventLog(tmp_path, readonly=True).query()


def test_two_writers_meeting_the_damage_set_it_aside_once_and_both_go_on_in_the_new_log(tmp_path):
    # A daemon and a `forget` (or two daemons) that both met it: the second must follow the new log, not set it
    # aside as damaged too (its events would go to a second copy, and the first one's new log be lost).
    path = logged(tmp_path, 3000)
    first, second = EventLog(tmp_path), EventLog(tmp_path)  # both open before the damage
    tear_a_page(path)
    first.check()  # (the hourly check: each one's own cached pages hide the damage)
    second.purge("bo")  # its file set aside by the other: purged in the new one, not in the copy
    second.add(Event("arrived", "bo", "den", 7000.0, 1.9e9))
    first.add(Event("arrived", "mochi", "den", 7001.0, 1.9e9))
    assert len(damaged_copies(path)) == 1
    kept = [(e.name, e.time_s) for e in EventLog(tmp_path, readonly=True).query()]
    assert {name for name, _ in kept[:-2]} == {"mochi"} and kept[-2:] == [("bo", 7000.0), ("mochi", 7001.0)]


def test_a_daemon_whose_watch_cannot_rejoin_the_new_log_logs_under_a_new_watch(tmp_path):
    # Its id another's in the log started anew: the events done again there were logged with no watch, taken for
    # an edge_rap's of before watches, and the next start closed the visit of a daemon still watching it.
    path = logged(tmp_path, 3000)
    daemon = EventLog(tmp_path)
    daemon.begin_watch()
    daemon._db().execute("UPDATE watches SET pid = 1, host = 'another' WHERE id = ?", (daemon.watch,))  # (taken)
    daemon._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tear_a_page(path)
    daemon.check()  # set aside; its watch's id is another's there
    daemon.add(Event("arrived", "bo", "den", 7000.0, 1.9e9))
    assert daemon._db().execute("SELECT w.pid FROM events e JOIN watches w ON w.id = e.watch WHERE e.name = 'bo' "
                                "AND e.camera = 'den'").fetchall() == [(os.getpid(),)]
    assert EventLog(tmp_path).begin_watch() == [] and daemon.last_seen("bo").kind == "arrived"


def test_a_daemon_whose_watch_a_full_disk_keeps_from_the_new_log_registers_again(tmp_path, monkeypatch):
    # The row refused there, the daemon kept its id: its events went under a watch no row has, whose visits a start
    # closes as a stopped run's, and "where is Bo?" read as ended, while it still watched.
    from edge_rap.daemon import events as module

    path = logged(tmp_path, 3000)
    daemon = EventLog(tmp_path)
    daemon.begin_watch()
    tear_a_page(path)

    def no_room(pid):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(module, "_process_identity", no_room)  # (read as the row is written)
    with pytest.raises(EdgeRapError, match="disk is full"):
        daemon.check()  # set aside; its row refused there, and a new watch's too
    assert daemon.watch is None  # (the loop registers again before its next event: `_follow_log_file`)
    monkeypatch.undo()
    daemon.begin_watch()
    daemon.add(Event("arrived", "bo", "den", 7000.0, 1.9e9))
    assert daemon._db().execute("SELECT w.pid FROM events e JOIN watches w ON w.id = e.watch WHERE e.name = 'bo' "
                                "AND e.camera = 'den'").fetchall() == [(os.getpid(),)]


def test_processes_opening_a_damaged_log_at_once_set_it_aside_once(tmp_path):
    path = logged(tmp_path, 400)
    path.write_bytes(b"\x07" * path.stat().st_size)
    script = ("import sys, time\nfrom pathlib import Path\nfrom edge_rap.daemon.events import EventLog\n"
              "from edge_rap.types import Event\nlog = EventLog(Path(sys.argv[1]))\n"
              "log.add(Event('arrived', sys.argv[2], 'porch', 1.0, time.time()))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"c{k}"], stderr=subprocess.PIPE,
                              text=True) for k in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert len(damaged_copies(path)) == 1 and sum("was damaged" in e for e in errors) == 1
    assert sorted(e.name for e in EventLog(tmp_path, readonly=True).query()) == ["c0", "c1", "c2", "c3"]


def test_a_process_opening_the_log_waits_while_another_sets_it_aside(tmp_path):
    # Without the folder's lock, it found the damaged file too and set it aside as well, and the first one's
    # `set_aside` then moved the new log (with the other's event in it) aside as a second damaged copy.
    import os
    import time

    from edge_rap.daemon.log_damage import folder_lock, set_aside

    path = logged(tmp_path, 40)
    path.write_bytes(b"\x07" * PAGE)
    script = ("import sys, time\nfrom pathlib import Path\nfrom edge_rap.daemon.events import EventLog\n"
              "from edge_rap.types import Event\n"
              "EventLog(Path(sys.argv[1])).add(Event('arrived', 'bo', 'porch', 1.0, time.time()))\n")
    waiting = f":{os.stat(tmp_path).st_ino} "
    with folder_lock(tmp_path):  # this process is setting it aside
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE, text=True)
        for _ in range(600):  # until the other waits for the lock (a waiter in /proc/locks), at most a minute
            if any("->" in line and waiting in line for line in Path("/proc/locks").read_text().splitlines()):
                break
            assert proc.poll() is None, proc.communicate()[1]  # it went on without waiting
            time.sleep(0.1)
        else:
            raise AssertionError("the other process never waited for the folder's lock")
        set_aside(path)
    assert proc.wait(timeout=60) == 0, proc.communicate()[1]
    assert len(damaged_copies(path)) == 1
    assert [e.name for e in EventLog(tmp_path, readonly=True).query()] == ["bo"]


def test_a_daemon_whose_log_another_process_set_aside_says_so_and_goes_on_in_the_new_one(tmp_path, caplog):
    # It said "was moved or deleted: a new event log is started" of a log that a `forget` had set aside as damaged.
    from test_daemon import run_clearing_the_log

    def set_aside_by_another(root: Path) -> None:
        from edge_rap.daemon.log_damage import folder_lock, set_aside

        with folder_lock(root):
            set_aside(root / "events.sqlite")
        EventLog(root).close()  # that process's new log

    with caplog.at_level(logging.WARNING):
        _, home = run_clearing_the_log(tmp_path, (), clear=set_aside_by_another)
    assert "events.sqlite was set aside as damaged by another process: events go on in the new log there" in caplog.text
    assert [e.kind for e in EventLog(home.root, readonly=True).query()] == ["arrived", "left"]  # the second visit


def test_the_daemon_keeps_recognising_when_its_log_is_damaged_while_it_runs(tmp_path, monkeypatch, caplog):
    # The log torn under a running daemon (its -wal and file): it went on "logging" into a file no reader could
    # read, for as long as it ran, and every event since was lost.
    import edge_rap.daemon.loop
    from test_daemon import ScriptedHousehold, write_frames

    from edge_rap.daemon.loop import Daemon, DaemonOptions
    from edge_rap.daemon.track import VoteSettings
    from edge_rap.perceive.camera import parse_source

    monkeypatch.setattr(edge_rap.daemon.loop, "PRUNE_EVERY_S", 0.0)  # the hourly check at every turn of the loop
    home = ScriptedHousehold(tmp_path / "memory")
    reported = []

    def tear_the_log_at_the_first_leaving(event):
        reported.append(event)
        if len(reported) == 2:
            for name in ("events.sqlite", "events.sqlite-wal"):
                with open(home.root / name, "r+b") as f:
                    f.seek(100)
                    f.write(b"\x07" * 8192)

    values = [40, 255, 255, 255, 40, 40, 40, 40, 255, 255, 255, 40, 40, 40, 40]
    options = DaemonOptions((parse_source(f"cam={write_frames(tmp_path / 'frames', values)}"),), realtime=False,
                            votes=VoteSettings(confirm=2, leave_after_s=1.0, cooldown_s=0))
    with caplog.at_level(logging.WARNING):
        Daemon(home, options, tear_the_log_at_the_first_leaving).run(threading.Event())
    assert [e.kind for e in reported] == ["arrived", "left", "arrived", "left"]  # recognised and announced on
    assert [e.kind for e in EventLog(home.root, readonly=True).query()][-2:] == ["arrived", "left"]
    assert len(damaged_copies(home.root / "events.sqlite")) == 1 and caplog.text.count("was damaged") == 1
    assert home.events._db().execute("SELECT COUNT(*) FROM watches").fetchone() == (0,)  # its watch, ended


def test_doctor_says_a_damaged_log_and_the_copies_set_aside(tmp_path):
    from edge_rap.config import Profile, Settings
    from edge_rap.daemon.doctor import _event_log, format_doctor

    settings = Settings(home=tmp_path, memory=tmp_path / "memory", models=tmp_path / "models", profile=Profile())
    settings.memory.mkdir()
    assert _event_log(settings)["damaged"] is None
    path = logged(settings.memory, 400)
    path.write_bytes(b"\x07" * 4096)
    report = _event_log(settings)
    assert report["damaged"] == "file is not a database" and report["set_aside"] == []
    EventLog(settings.memory).close()  # set aside
    report = _event_log(settings)
    assert report["damaged"] is None and report["set_aside"] == [str(p) for p in damaged_copies(path)]
    line = [x for x in format_doctor(_report(report)).splitlines() if x.startswith("event log:")]
    assert len(line) == 1 and "damaged logs set aside: " in line[0] and "may name concepts forgotten" in line[0]
    json.dumps(report)


def _report(event_log: dict) -> dict:
    """A doctor's report around `event_log`, the rest as on a bare machine."""
    return {"profile": "x86-cpu", "reason": "test", "providers": {"available": [], "chosen": []},
            "cuda": {"driver": None, "llama_gpu_offload": None}, "model_cache": "/m", "models": [],
            "memory": {"path": "/h", "concepts": 0, "problem": None, "unrecognisable": [],
                       "readable_by_others": False, "read_only": False, "read_only_mount": False,
                       "killed_restores": [], "moved_aside": []},
            "event_log": event_log, "sources": [],
            "audio": {"voice": None, "players": [], "microphone": False, "microphone_note": "none"}, "backups": None,
            "missing": []}


def test_two_threads_meeting_the_damage_at_once_set_it_aside_once(tmp_path):
    # `run --serve`: the daemon's thread and a request's both met the torn page; the second to take the folder's
    # lock found the new log at the path, the one the first had just started, and set that healthy log aside too.
    from edge_rap.daemon import events

    path = logged(tmp_path, 3000)
    log = EventLog(tmp_path)
    tear_a_page(path)
    met, replaced, answered = threading.Event(), threading.Event(), []
    damage = events.is_damage

    def is_damage(e) -> bool:  # the request's thread holds here, its damage met, until the daemon's thread is done
        if threading.current_thread().name == "request" and not met.is_set():
            met.set()
            replaced.wait(60)
        return damage(e)

    def request() -> None:
        answered.append(len(log.query(limit=5000)))

    events.is_damage, thread = is_damage, threading.Thread(target=request, name="request")
    try:
        thread.start()
        assert met.wait(60)
        log.check()  # the daemon's thread meets it too, and sets it aside
        replaced.set()
        thread.join(60)
    finally:
        events.is_damage = damage
    assert len(damaged_copies(path)) == 1
    assert answered and answered[0] > 2900


def test_the_copy_salvaged_from_is_made_in_this_processs_own_temporary_folder(tmp_path, temp_folder, monkeypatch):
    # It was made in a folder of its own in /tmp, which a daemon killed while it salvaged a year's log left there
    # for good: no later process removes a folder that is not its own kind (edge_rap/scratch.py).
    import os
    import shutil
    from types import SimpleNamespace

    import edge_rap.daemon.log_damage as log_damage

    copies = []
    monkeypatch.setattr(log_damage, "shutil", SimpleNamespace(
        copyfile=lambda source, target: copies.append(Path(target)) or shutil.copyfile(source, target)))
    root = tmp_path / "memory"
    root.mkdir()
    tear_a_page(logged(root, 3000))
    EventLog(root).add(Event("arrived", "bo", "den", 7000.0, 1.9e9))
    assert copies and all(c.parent.parent.parent == temp_folder for c in copies)
    assert all(c.parent.parent.name.startswith(f"edge-rap-pid{os.getpid()}-") for c in copies)
    assert list(temp_folder.glob("*/*")) == []  # (removed after)


def test_a_stale_page_whose_rows_repeat_anothers_ids_is_salvaged_once(tmp_path):
    # A torn write that left an older page's content in another's place (a leaf's rows read twice): the salvage
    # gave every id read twice, the new log refused them ("UNIQUE constraint failed: events.id"), and `run` stopped
    # with the events still readable carried over into no log.
    path = logged(tmp_path, 3000)
    data = bytearray(path.read_bytes())
    leaves = [k for k in range(1, len(data) // PAGE) if data[k * PAGE] == 0x0D]
    stale, over = leaves[5], leaves[10]
    data[over * PAGE:(over + 1) * PAGE] = data[stale * PAGE:(stale + 1) * PAGE]
    path.write_bytes(bytes(data))
    EventLog(tmp_path).add(Event("arrived", "bo", "den", 7000.0, 1.9e9))
    kept = events_in(tmp_path)
    assert len(damaged_copies(path)) == 1 and len(kept) > 2900 and kept == sorted(set(kept)) and kept[-1] == 7000.0


def test_a_read_that_ends_on_a_garbage_rows_id_behind_it_still_moves_on():
    # A damaged page whose last row read before the damage has an id behind where the read started: each read
    # started again from there, read the same rows again, and the salvage never ended (holding the folder's lock).
    from edge_rap.daemon.log_damage import _events_around_damage

    class Torn:
        """Ids 1-10 in a table whose page after id 5 holds a row with id 2, then damage, then ids 7-10."""

        reads = 0

        def execute(self, sql, args):
            if "MAX(id)" in sql:
                return iter([(10,)])
            Torn.reads += 1
            assert Torn.reads < 50, "it reads the same rows again and again"
            return self._rows(args[0])

        @staticmethod
        def _rows(after):
            if after < 6:
                yield from ((k,) for k in range(after + 1, 6))
                yield (2,)
                raise sqlite3.DatabaseError("database disk image is malformed")
            yield from ((k,) for k in range(max(after + 1, 7), 11))

    assert {r[0] for r in _events_around_damage(Torn(), "SELECT id FROM events WHERE id > ?")} == {
        1, 2, 3, 4, 5, 7, 8, 9, 10}


def test_a_writer_whose_log_another_process_set_aside_says_so_though_no_event_comes(tmp_path, caplog):
    # The daemon's sign of life every 10 s followed the new log without a word, and the line the daemon says of it
    # came only where an event was logged first: a daemon's journal said nothing of it.
    from edge_rap.daemon.log_damage import folder_lock, set_aside

    log = EventLog(tmp_path)
    with folder_lock(tmp_path):  # another process sets it aside, and starts the new log
        set_aside(tmp_path / "events.sqlite")
    EventLog(tmp_path).close()
    with caplog.at_level(logging.WARNING):
        log.still_watching()
        log.still_watching()
    assert [m.endswith("events.sqlite was set aside as damaged by another process: events go on in the new log there")
            for m in caplog.messages] == [True]


def test_a_memory_with_no_concept_yet_whose_log_was_set_aside_is_still_a_memory(tmp_path):
    # A daemon started on a new memory logs before anything is remembered: once its damaged log was set aside,
    # every command refused the folder as "not an edge-rap memory (no memory.sqlite)", `remember` included.
    from edge_rap.memory.files import foreign_entries, refuse_what_is_not_a_sound_memory

    path = logged(tmp_path, 300)
    tear_a_page(path)
    EventLog(tmp_path).add(Event("arrived", "bo", "porch", 5000.0, 1.8e9))
    (copy,) = damaged_copies(path)
    copy.with_name(copy.name + "-wal").write_bytes(b"")  # its -wal and -shm are set aside beside it where there
    assert foreign_entries(tmp_path) == []
    refuse_what_is_not_a_sound_memory(tmp_path)


def test_a_log_that_cannot_be_opened_for_want_of_room_says_the_disk_is_full(tmp_path, monkeypatch):
    # SQLite's "disk I/O error" of a -shm it could not make: `rename` and `forget` on a nearly full disk said "cannot
    # open the event log (disk I/O error)", as if the disk were failing
    logged(tmp_path, 3)
    usage = shutil.disk_usage(tmp_path)

    def no_room(self, *args, **kwargs) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(EventLog, "_start", no_room)
    monkeypatch.setattr(shutil, "disk_usage", lambda where: usage._replace(free=4096))
    with pytest.raises(EventLogFull, match=r"^\S+: cannot open the event log \(the disk is full\)$"):
        EventLog(tmp_path)


def test_a_full_disk_that_keeps_a_new_log_from_starting_puts_the_damaged_one_back_and_says_so(tmp_path, monkeypatch):
    # The hourly check said "cannot check the event log (disk I/O error)", SQLite's word for a -shm it could not make,
    # of a log it had set aside; and the next write started an empty log in its place, with none of the events the
    # copy still gave.
    path = logged(tmp_path, 3000)
    daemon = EventLog(tmp_path)
    tear_a_page(path)
    damaged, usage, tables = path.read_bytes(), shutil.disk_usage(tmp_path), EventLog._tables

    def no_room(self, checked: bool = False, rescued=None) -> None:
        if rescued is None:
            return tables(self, checked, rescued)
        self._db().execute("BEGIN IMMEDIATE")  # (the new file begun)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(EventLog, "_tables", no_room)
    monkeypatch.setattr(shutil, "disk_usage", lambda where: usage._replace(free=4096))
    with pytest.raises(EventLogFull, match=r"^\S+: the event log is damaged \(database disk image is malformed"
                       r"[^\n]*\), and no new log could be started in its place \(the disk is full\): it is left as "
                       r"it was, to be set aside at the next write$"):
        daemon.check()
    assert path.read_bytes() == damaged and damaged_copies(path) == []
    monkeypatch.undo()
    daemon.add(Event("arrived", "bo", "den", 7000.0, 1.9e9))  # (a write that meets no damage goes on in it)
    daemon.check()
    assert len(damaged_copies(path)) == 1 and len(events_in(tmp_path)) > 2900
