"""A daemon's watch id is never given twice: the events a run logged keep its id, and a clock step in a later run
moves that run's events alone, as the closing of a dead run's visits closes its own."""

from __future__ import annotations

import sqlite3

from edge_rap.daemon.events import EventLog
from edge_rap.daemon.log_damage import damaged_copies
from edge_rap.types import Event
from test_event_log_damage import tear_a_page

OLD_WATCHES = ("CREATE TABLE watches (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, identity TEXT, host TEXT NOT NULL, "
               "started REAL NOT NULL, alive REAL NOT NULL)")


def a_run(log: EventLog, names: tuple[str, ...] = ("bo", "mochi")) -> int:
    """A run that logs an arrival and a leaving of each of `names` and stops cleanly; its watch id."""
    log.begin_watch()
    watch = log.watch
    for k, name in enumerate(names):
        log.add(Event("arrived", name, "porch", float(k), 1.7e9 + k))
        log.add(Event("left", name, "porch", float(k) + 0.5, 1.7e9 + k + 0.5))
    log.end_watch()
    return watch


def test_a_run_after_a_clean_stop_gets_a_new_id_and_a_clock_step_moves_its_events_alone(tmp_path):
    log = EventLog(tmp_path)
    first = a_run(log)
    log.begin_watch()
    assert log.watch != first
    log.add(Event("arrived", "bo", "porch", 9.0, 1.7e9 + 9))
    assert log.move(log.watch, 3600.0) == 1  # the earlier run's 4 events stay at their times
    assert [e.wall for e in log.query()][:4] == [1.7e9, 1.7e9 + 0.5, 1.7e9 + 1, 1.7e9 + 1.5]


def test_a_log_of_before_gives_ids_past_every_id_its_events_hold(tmp_path):
    # A log written by an edge_rap of before this fix: its table gave a stopped run's id again.
    log = EventLog(tmp_path)
    db = sqlite3.connect(tmp_path / "events.sqlite")
    db.executescript(f"DROP TABLE watches; {OLD_WATCHES};")
    db.close()
    watches = [a_run(log), a_run(log)]
    assert watches == [1, 1]  # (as the table of before gave them)
    log.close()
    log = EventLog(tmp_path)  # this version opens it
    log.begin_watch()
    assert log.watch == 2
    log.end_watch()
    log.close()
    db = sqlite3.connect(tmp_path / "events.sqlite")  # an edge_rap of before inserts as it did: past them too
    db.execute("INSERT INTO watches (pid, identity, host, started, alive) VALUES (1, NULL, 'h', 0, 0)")
    assert db.execute("SELECT MAX(id) FROM watches").fetchone()[0] == 3
    db.close()


def test_a_restored_log_without_its_watches_gives_ids_past_its_events(tmp_path):
    # A restore ends the watches of the backup's daemons: their rows go, their events stay.
    log = EventLog(tmp_path)
    watches = [a_run(log), a_run(log)]
    log.begin_watch()
    log.add(Event("arrived", "bo", "porch", 9.0, 1.7e9 + 9))
    last = log.watch
    log.close()
    EventLog(tmp_path).end_watches(before=2e9)
    log = EventLog(tmp_path)
    log.begin_watch()
    assert log.watch not in {*watches, last}
    assert log.move(log.watch, 3600.0) == 0


def test_a_log_started_anew_from_a_damaged_one_gives_ids_past_those_its_rescued_events_hold(tmp_path):
    log = EventLog(tmp_path)
    watches = [a_run(log, ("bo", "mochi") * 400) for _ in range(2)]
    log.close()
    path = tmp_path / "events.sqlite"
    with sqlite3.connect(path) as db:  # the watches' rows unreadable: no watch is rescued, the events are
        db.execute("DELETE FROM watches")
    tear_a_page(path)
    log = EventLog(tmp_path)
    log.begin_watch()
    assert damaged_copies(path) and {e.name for e in log.query()} == {"bo", "mochi"}
    assert log.watch not in watches
    assert log.move(log.watch, 3600.0) == 0


def test_a_log_whose_watches_have_no_identity_is_brought_up_to_date(tmp_path):
    # The first edge_rap with watches (3 Dec 2026) kept no process identity: `run` failed on 'no such column:
    # identity', and since the table is made anew with AUTOINCREMENT, every writer (forget too) did.
    log = EventLog(tmp_path)
    log.close()
    db = sqlite3.connect(tmp_path / "events.sqlite")
    db.executescript("DROP TABLE watches; CREATE TABLE watches (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, "
                     "host TEXT NOT NULL, started REAL NOT NULL, alive REAL NOT NULL); "
                     "INSERT INTO watches (pid, host, started, alive) VALUES (1, 'elsewhere', 0, 0);")
    db.close()
    log = EventLog(tmp_path)
    first = a_run(log)
    assert first == 2 and a_run(log) == 3
    assert log.purge("bo") == 4  # (forget removes its events)


def test_a_dead_runs_visit_gets_no_leaving_after_a_live_runs_arrival_at_its_place(tmp_path):
    # <bo> arrived on the porch in a run that died, then again in a run still watching: the next start closed the
    # dead run's visit with a "left" logged after the live run's arrival, and "where is Bo?" said she had left.
    dying, live = EventLog(tmp_path), EventLog(tmp_path)
    dying.begin_watch()
    live.begin_watch()
    dying.add(Event("arrived", "bo", "porch", 1.0, 1.7e9 + 1))
    live.add(Event("arrived", "bo", "porch", 2.0, 1.7e9 + 2))
    dying._db().execute("UPDATE watches SET identity = 'a process gone' WHERE id = ?", (dying.watch,))  # (died)
    assert EventLog(tmp_path).begin_watch() == []
    assert live.last_seen("bo").wall == 1.7e9 + 2 and live.last_seen("bo").kind == "arrived"
    assert dying._db().execute("SELECT COUNT(*) FROM watches WHERE id = ?", (dying.watch,)).fetchone() == (0,)


def test_a_start_closing_a_killed_runs_visits_keeps_where_it_saw_them_last(tmp_path):
    # <bo>, seen on the porch and then in the den (at the door, by both cameras), was in view of both when the run was
    # killed: the start closed the den's visit first, and "where is Bo?" said the porch, where she was seen before.
    dying = EventLog(tmp_path)
    dying.begin_watch()
    dying.add(Event("arrived", "bo", "porch", 1.0, 1.7e9 + 1))
    dying.add(Event("arrived", "bo", "den", 2.0, 1.7e9 + 2))
    dying._db().execute("UPDATE watches SET identity = 'a process gone' WHERE id = ?", (dying.watch,))  # (killed)
    assert EventLog(tmp_path).last_seen("bo").camera == "den"
    assert len(EventLog(tmp_path).begin_watch()) == 2
    assert EventLog(tmp_path).last_seen("bo").camera == "den"
