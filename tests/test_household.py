"""The household runtime: parts open on first use and close together; metadata work never loads a model."""

from __future__ import annotations

import json
import shutil

import pytest

from edge_rap.household import Household


@pytest.fixture
def remembered(settings, tmp_path):
    from PIL import Image as PILImage

    from edge_rap.export.calibrate import sample_photo_bank

    bank = sample_photo_bank()
    with Household(settings) as home:
        for name, sample in (("chelsea", "chelsea"), ("rocket", "rocket")):
            PILImage.fromarray(bank[sample]).save(tmp_path / f"{name}.png")
            home.memory.remember(name, [tmp_path / f"{name}.png"], f"the {name}", "thing")
    return settings


def test_metadata_commands_never_load_a_model(remembered, run, monkeypatch):
    import edge_rap.app

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(edge_rap.app, "open_embedder", no_model)
    monkeypatch.setattr(edge_rap.app, "face_loader", lambda settings: no_model)
    for argv in (["concepts"], ["edit", "chelsea", "--description", "our cat"], ["rename", "chelsea", "tabby"],
                 ["forget", "rocket"], ["events"]):
        rc, _, err = run(*argv)
        assert rc == 0, (argv, err)
    rc, out, _ = run("concepts", "--json")
    assert '"tabby"' in out and "our cat" in out and "rocket" not in out


def test_closing_releases_what_was_opened_and_only_that(remembered):
    home = Household(remembered)
    assert home.concepts()  # the store alone
    assert "memory" not in home.__dict__ and "retriever" not in home.__dict__
    home.close()
    assert not {"store", "memory", "events"} & set(home.__dict__)
    with Household(remembered) as home:
        assert len(home.retriever.view) > 0  # opens memory and embedder on first use
    assert "memory" not in home.__dict__


def test_a_memory_folder_the_daemon_and_the_api_wrote_into_first_is_still_a_memory(tmp_path):
    """The daemon can start on an empty memory (events.sqlite), `serve` writes its token, `make demo` its folder
    in the default home: the first `remember` afterwards must not take the folder for someone else's."""
    import numpy as np
    from fakes import fake_memory
    from PIL import Image as PILImage

    from edge_rap.daemon.events import EventLog

    root = tmp_path / "home"
    EventLog(root).close()
    (root / "api-token").write_text("x" * 64)
    (root / "serve.json").write_text("{}")
    (root / "demo").mkdir()
    photo = tmp_path / "bo.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(photo)
    memory = fake_memory(root)
    assert memory.remember("bo", [photo]).name == "bo"
    memory.close()


def test_a_change_the_event_log_cannot_follow_is_refused_before_the_memory_changes(remembered, run, monkeypatch):
    """rename and forget carry the concept's events along: a log that cannot be written must stop them before
    the memory changes, not report a failure for a change that happened and leave its events orphaned."""
    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    path = remembered.memory / "events.sqlite"
    log = EventLog(remembered.memory)
    for name in ("chelsea", "rocket"):
        log.add(Event("arrived", name, "den", 0.0, 1.0))
    log.close()
    opened = EventLog._db

    def read_only(self):  # as `chattr +i events.sqlite`: it opens, but every write is refused
        self.readonly = True
        try:
            return opened(self)
        finally:
            self.readonly = False

    monkeypatch.setattr(EventLog, "_db", read_only)
    for argv in (["rename", "chelsea", "tabby"], ["forget", "rocket"]):
        rc, out, err = run(*argv)
        assert rc == 2 and out == "" and err.count("\n") == 1 and str(path) in err, (argv, err)
    assert [c["name"] for c in json.loads(run("concepts", "--json")[1])] == ["chelsea", "rocket"]
    monkeypatch.undo()
    assert run("rename", "chelsea", "tabby")[0] == 0 and run("forget", "rocket")[0] == 0
    log = EventLog(remembered.memory, readonly=True)
    assert [e.name for e in log.query()] == ["tabby"]  # the events followed the name; rocket's are gone
    log.close()


def test_forget_and_rename_set_a_damaged_log_aside_and_forget_names_the_copy_that_may_name_it(remembered, run,
                                                                                             caplog):
    # They stopped on it ("cannot open the event log ... move it away"), and once it was moved by hand, forget said
    # nothing of the copy that still held the forgotten concept's events.
    from edge_rap.daemon.events import EventLog
    from edge_rap.daemon.log_damage import damaged_copies
    from edge_rap.types import Event

    path = remembered.memory / "events.sqlite"
    log = EventLog(remembered.memory)
    for name in ("chelsea", "rocket"):
        log.add(Event("arrived", name, "den", 0.0, 1.0))
    log.close()
    path.write_bytes(b"not an event log " * 400)
    rc, out, _ = run("rename", "chelsea", "tabby")
    [copy] = damaged_copies(path)
    assert rc == 0 and out.startswith("renamed")
    assert [f"set aside as {copy.name}" in m for m in caplog.messages] == [True]
    caplog.clear()
    rc, out, _ = run("forget", "rocket")
    assert rc == 0 and out.startswith("forgot <rocket>") and len(caplog.messages) == 1
    assert f"<rocket> is forgotten, but the damaged event log set aside at {copy} may still name it" in caplog.text
    assert [c["name"] for c in json.loads(run("concepts", "--json")[1])] == ["tabby"]
    assert copy.read_bytes() == b"not an event log " * 400  # kept, every byte


def test_the_rm_that_forget_suggests_deletes_every_damaged_copy_of_one_second(remembered, run, caplog):
    # It globbed each copy ("X*"): X's glob also took "X-2", set aside later in the same second, whose own glob then
    # found nothing, and the suggested command stopped with "No such file".
    import re
    import subprocess

    from edge_rap.daemon.log_damage import damaged_copies

    first = remembered.memory / "events.sqlite.damaged-20261205T031500Z"
    files = [first, first.with_name(first.name + "-wal"), first.with_name(first.name + "-2"),
             first.with_name(first.name + "-2-shm")]
    for f in files:
        f.write_bytes(b"damaged")
    assert damaged_copies(remembered.memory / "events.sqlite") == [first, files[2]]
    rc, _, _ = run("forget", "rocket")
    [command] = re.findall(r"\(`(rm [^`]*)`\)", caplog.text)
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    assert rc == 0 and done.returncode == 0 and done.stderr == ""
    assert not any(f.exists() for f in files)


def test_a_forget_waiting_for_a_busy_memory_does_not_stop_the_daemon_logging(remembered):
    # The event log is only proven writable before the memory changes; its lock is not held while `forget`
    # waits for the memory (a long remember or reindex elsewhere), or a running daemon's events would be lost.
    import sqlite3
    import threading

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    daemon_log, order = EventLog(remembered.memory), []
    with Household(remembered) as home:
        home.bare_memory  # opened first, as a command does
        busy = sqlite3.connect(remembered.memory / "memory.sqlite", isolation_level=None)
        busy.execute("BEGIN IMMEDIATE")  # another writer of the memory
        forgetting = threading.Thread(target=lambda: order.append(("forgot", home.forget("rocket").name)))
        forgetting.start()
        forgetting.join(1.0)  # forget is now waiting for the memory
        daemon_log.add(Event("arrived", "chelsea", "den", 0.0, 1.0))
        order.append(("logged", "chelsea"))
        busy.execute("COMMIT")
        forgetting.join(30)
    assert order == [("logged", "chelsea"), ("forgot", "rocket")]
    assert [e.name for e in EventLog(remembered.memory, readonly=True).query()] == ["chelsea"]


def test_a_forget_overtaken_by_a_rename_leaves_the_renamed_concept_and_its_events(remembered, monkeypatch):
    # `forget rocket` beside `rename rocket moon-rocket` in another process: the forget deleted <moon-rocket>, said
    # "forgot <rocket>" and purged the events under <rocket>, which the rename was about to carry to its new name
    from edge_rap.daemon.events import EventLog
    from edge_rap.errors import EdgeRapError
    from edge_rap.memory.store import Store
    from edge_rap.types import Event

    log = EventLog(remembered.memory)
    log.add(Event("arrived", "rocket", "den", 0.0, 1.0))
    log.close()
    looked_up = Store.get
    with Household(remembered) as home, Household(remembered) as other:
        def renamed_first(store, name):
            concept = looked_up(store, name)
            if store is home.bare_memory.store and concept.name == "rocket":
                other.bare_memory.rename("rocket", "moon-rocket")  # (its events' turn comes after)
            return concept

        monkeypatch.setattr(Store, "get", renamed_first)
        with pytest.raises(EdgeRapError, match="renamed it to 'moon-rocket' meanwhile"):
            home.forget("rocket")
        monkeypatch.undo()
        assert sorted(c.name for c in home.concepts()) == ["chelsea", "moon-rocket"]
        assert [e.name for e in home.events.query()] == ["rocket"]  # for the rename to carry on


def test_forget_and_rename_make_no_event_log_where_none_was_written(remembered, run, monkeypatch):
    # On a full disk, forgetting is how room is made: a log that had to be made first failed it ("cannot open the
    # event log (database or disk is full)"), and left an empty events.sqlite behind.
    from edge_rap.daemon.events import EventLog
    from edge_rap.errors import EdgeRapError

    def full_disk(self, *args, **kwargs):
        raise EdgeRapError("events.sqlite: cannot open the event log (database or disk is full)")

    monkeypatch.setattr(EventLog, "__init__", full_disk)
    assert run("rename", "chelsea", "tabby")[0] == 0 and run("forget", "rocket")[0] == 0
    assert [c["name"] for c in json.loads(run("concepts", "--json")[1])] == ["tabby"]
    assert not (remembered.memory / "events.sqlite").exists()


def test_forget_and_rename_are_not_refused_for_the_first_page_a_full_disk_left_of_a_log(remembered, run,
                                                                                          monkeypatch):
    # `GET /api/events` under `serve` on a full disk began a log and left its first page (4096 bytes, no table); every
    # `forget` after it, how the user makes room, was "cannot open the event log (the disk is full)"
    import sqlite3

    from edge_rap.daemon.events import EventLog
    from edge_rap.errors import EdgeRapError

    begun = sqlite3.connect(remembered.memory / "events.sqlite")
    begun.execute("PRAGMA journal_mode=WAL")  # (the header page written, then no room for the rest)
    begun.close()
    (remembered.memory / "events.sqlite-wal").write_bytes(b"")
    assert (remembered.memory / "events.sqlite").stat().st_size == 4096

    def full_disk(self, *args, **kwargs):
        raise EdgeRapError("events.sqlite: cannot open the event log (the disk is full)")

    with monkeypatch.context() as patched:
        patched.setattr(EventLog, "__init__", full_disk)
        assert run("rename", "chelsea", "tabby")[0] == 0 and run("forget", "rocket")[0] == 0
        assert [c["name"] for c in json.loads(run("concepts", "--json")[1])] == ["tabby"]
    EventLog(remembered.memory).close()  # a log with its tables is still one to carry the events along in
    with monkeypatch.context() as patched:
        patched.setattr(EventLog, "__init__", full_disk)
        assert run("forget", "tabby")[0] == 2


def test_a_rename_whose_events_could_not_follow_is_done_and_says_how_to_carry_them(remembered, run, monkeypatch):
    # a nearly full disk: "renamed <chelsea> to <tabby>, but its events stay under <chelsea> in PATH (database or disk
    # is full)", exit 2 as if refused (the API's 422, with the log's path), and nothing said of how to carry them
    import sqlite3

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    log = EventLog(remembered.memory)
    log.add(Event("arrived", "chelsea", "den", 0.0, 1.0))
    log.close()

    def full(self, old, new):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(EventLog, "rename", full)
        rc, _, err = run("rename", "chelsea", "tabby")
    assert rc == 1 and err == (f"edge-rap: {remembered.memory / 'events.sqlite'}: its events stay under <chelsea> "
                               "(the disk is full), though <chelsea> itself is renamed <tabby>: rename <tabby> to "
                               "<chelsea> and back again to carry them along\n")
    assert run("rename", "tabby", "chelsea")[0] == 0 and run("rename", "chelsea", "tabby")[0] == 0  # as it says
    assert [e["name"] for e in json.loads(run("events", "--json")[1])] == ["tabby"]


def test_a_forget_whose_events_could_not_be_removed_says_the_concept_is_gone_and_again_removes_them(remembered,
                                                                                                    monkeypatch):
    # "I couldn't forget <rocket>: forgot <rocket>, but its events stay ...": which was it? And forgetting again
    # said "no concept named 'rocket'", its events kept for good
    import sqlite3

    from edge_rap.daemon.events import EventLog
    from edge_rap.errors import EdgeRapError
    from edge_rap.types import Event

    log = EventLog(remembered.memory)
    log.add(Event("arrived", "rocket", "den", 0.0, 1.0))
    log.close()

    def failing(self, name):
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patched, Household(remembered) as home:
        patched.setattr(EventLog, "purge", failing)
        with pytest.raises(EdgeRapError, match=r"events.sqlite: its events could not be removed .*<rocket> itself "
                                               r"is forgotten .*: forget <rocket> again to remove them$"):
            home.forget("rocket")
    with Household(remembered) as home:
        assert [c.name for c in home.concepts()] == ["chelsea"]
        assert [e.name for e in home.events.query()] == ["rocket"]
        assert home.forget("<rocket>").name == "rocket"
        assert home.events.query() == []
        with pytest.raises(EdgeRapError, match="no concept named 'rocket'"):
            home.forget("rocket")


def test_a_forget_done_but_for_its_events_exits_1_as_a_command_done_in_part(remembered, run, monkeypatch):
    # exit status 2, as for a refused forget that changed nothing: a script took <rocket> for still remembered
    import sqlite3

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    log = EventLog(remembered.memory)
    log.add(Event("arrived", "rocket", "den", 0.0, 1.0))
    log.close()

    def failing(self, name):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(EventLog, "purge", failing)
    rc, out, err = run("forget", "rocket", "--json")
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and "<rocket> itself is forgotten" in err
    assert run("forget", "nobody")[0] == 2  # refused, nothing changed


def test_forget_deletes_the_vlm_encodings_of_the_concepts_photos(remembered, run):
    """The VLM's encodings of a reference photo persist in the model cache, one folder per mmproj: a forgotten
    concept's stayed there for good, though "its photos go too"."""
    import numpy as np

    from edge_rap.generate.assistant import reference_image
    from edge_rap.generate.cache import ENCODINGS_FOLDER, EncoderCache

    with Household(remembered) as home:
        keys = {c.name: reference_image(home.store, c).key for c in home.concepts()}
    caches = [EncoderCache(remembered.models / ENCODINGS_FOLDER, fingerprint * 32) for fingerprint in ("ab", "cd")]
    try:  # (the session's shared model cache: these two made-up mmproj folders are removed after)
        for cache in caches:
            for key in keys.values():
                cache.put(key, np.ones(8, np.float32))
        assert run("forget", "rocket")[0] == 0
        for cache in caches:
            fresh = EncoderCache(cache.folder.parent, cache.folder.name * 4)  # the disk alone, not this one's RAM
            assert fresh.folder == cache.folder
            assert fresh.get(keys["rocket"], 8) is None and fresh.get(keys["chelsea"], 8) is not None
    finally:
        for cache in caches:
            shutil.rmtree(cache.folder, ignore_errors=True)


def test_nothing_of_a_forgotten_concept_stays_in_the_memory_folder_while_others_hold_it_open(remembered):
    """A daemon keeps the memory's database and its event log open for months, and with them their -wal files:
    a forgotten concept's rows (its name, description, photo's hash, sightings) stayed readable in the -wal's
    older frames, and on a SQLite built without secure_delete in the database's freed pages too."""
    from edge_rap.types import Event

    with Household(remembered) as home:
        sha256 = home.store.views(home.store.get("rocket").id)[0].image_sha256
        for k in range(3):
            home.events.add(Event("arrived", "rocket", "den", float(k), 1e9 + k, said="<rocket> is here: the rocket"))
            home.events.add(Event("arrived", "chelsea", "den", float(k), 1e9 + k))
        for db in (home.bare_memory.store.db, home.events._db()):  # the connections that delete
            db.execute("PRAGMA secure_delete = OFF")  # as a build whose default it is (Debian's is on)
        home.forget("rocket")
        traces = [(path.name, trace) for path in remembered.memory.rglob("*") if path.is_file()
                  for trace in (b"rocket", sha256.encode()) if trace in path.read_bytes()]
        assert traces == []
        assert [c.name for c in home.concepts()] == ["chelsea"] and home.events.query(name="chelsea")


def test_forget_names_the_memories_a_restore_moved_aside_that_may_still_hold_the_concept(remembered, run, caplog):
    # `restore --replace` keeps the memory it replaced beside it until the household deletes it: a concept forgotten
    # afterwards stayed there, photos and all, and forget said nothing of it.
    backup = remembered.memory.parent / "backup.tar"
    assert run("backup", str(backup))[0] == 0
    rc, out, _ = run("restore", str(backup), "--replace")
    assert rc == 0
    [aside] = [p for p in remembered.memory.parent.iterdir() if ".before-restore-" in p.name]
    caplog.clear()
    rc, out, _ = run("forget", "rocket")
    assert rc == 0 and out.startswith("forgot <rocket>")
    assert (f"<rocket> is forgotten, but the memory a restore moved aside at {aside} may still hold it" in caplog.text
            and f"rm -r {aside}" in caplog.text)
    assert (aside / "memory.sqlite").is_file()  # kept: the household's to delete


def test_a_forget_says_so_where_a_reader_kept_the_forgotten_rows_readable(remembered, caplog):
    """A reader that holds its snapshot for over a second (a backup reading, another thread's unfinished query)
    keeps the -wal from being merged and cut: SQLite says "busy" in the checkpoint's row, not as an error, and
    forget said nothing while the forgotten concept's rows stayed readable in the memory's database files."""
    import sqlite3

    with Household(remembered) as home:
        home.concepts()
        reader = sqlite3.connect(home.bare_memory.store.db_path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM concepts").fetchone()  # a snapshot of before the forget
        try:
            home.forget("rocket")
        finally:
            reader.close()
        files = (home.bare_memory.store.db_path, home.bare_memory.store.db_path.with_name("memory.sqlite-wal"))
        assert any(b"rocket" in path.read_bytes() for path in files)  # (what is said)
        assert [c.name for c in home.concepts()] == ["chelsea"]  # the forget stands
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "-wal" in r.getMessage()]
    assert len(said) == 1 and "memory.sqlite" in said[0] and "reading or writing it for over 1 s" in said[0]


def _log_arrivals(memory, *names: str) -> None:
    """An arrival of each name in the memory's event log, as a daemon logs them."""
    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    log = EventLog(memory)
    for name in names:
        log.add(Event("arrived", name, "den", 0.0, 1.0))
    log.close()


def test_forgetting_a_gone_concept_finds_its_kept_events_by_any_spelling_of_its_name(remembered):
    # the log's events were found only by the stored spelling: "zoë’s mug" typed on a phone left them for good
    _log_arrivals(remembered.memory, "Zoë's Mug", "rocket")
    with Household(remembered) as home:
        assert home.forget("zoë’s  MUG").name == "Zoë's Mug"
        assert [e.name for e in home.events.query()] == ["rocket"]


def test_a_concept_of_no_category_keeps_the_detectors_regions_beside_categorised_ones(tmp_path):
    # Before: the detector's vocabulary was the categories alone, so a YOLO export dropped every other label: with
    # <keys> (category "keys", no label of its own) beside concepts of none (a pet remembered by voice), no region was
    # proposed at all, and beside <bo> "dog" the person regions <gran> (no category) needs were dropped.
    from types import SimpleNamespace

    from edge_rap.config import Profile, Settings
    from edge_rap.types import Concept

    def vocabulary(categories, detector):
        home = Household(Settings(tmp_path, tmp_path / "memory", tmp_path / "models", Profile()))
        home.__dict__["store"] = SimpleNamespace(concepts=lambda: [Concept(i, f"c{i}", c, "", 0, 0, 1)
                                                                  for i, c in enumerate(categories)])
        home.__dict__["detector"] = detector
        return home.vocabulary()

    yolo, owl = SimpleNamespace(), SimpleNamespace(default_vocabulary=["object"])
    assert vocabulary(["", ""], yolo) is None
    assert vocabulary(["keys", ""], yolo) is None  # every label
    assert vocabulary(["keys", "dog"], yolo) == ["dog", "keys"]
    assert vocabulary(["keys", ""], owl) == ["keys", "object"]
    coco = SimpleNamespace(labels=["person", "dog", "cup"])  # a fixed detector has no label "keys": every label
    assert vocabulary(["keys", "dog"], coco) is None and vocabulary(["Dog", "cup"], coco) == ["Dog", "cup"]


def test_forgetting_again_the_spelling_a_failed_forget_kept_leaves_the_concept_written_alike(remembered, caplog):
    # a memory of before "´" was an apostrophe held <Zoë's Mug> and <Zoë´s Mug>; forgetting <Zoë's Mug> kept its
    # events (the log failed), and "forget <Zoë's Mug> again", as that failure says, forgot <Zoë´s Mug>
    with Household(remembered) as home:
        home.rename("rocket", "Zoë\u00b4s Mug")
    _log_arrivals(remembered.memory, "Zoë's Mug", "Zoë\u00b4s Mug")
    with Household(remembered) as home:
        assert home.forget("Zoë's Mug").name == "Zoë's Mug"
        assert "<Zoë\u00b4s Mug> is still remembered" in caplog.text  # a failed rename leaves a live one's so
        assert [c.name for c in home.concepts()] == ["chelsea", "Zoë\u00b4s Mug"]
        assert [e.name for e in home.events.query()] == ["Zoë\u00b4s Mug"]
        assert home.forget("zoë's mug").name == "Zoë\u00b4s Mug"  # no spelling of a gone one: the concept alike


def test_forgetting_a_spelling_alike_of_two_gone_concepts_events_asks_which(remembered):
    # a memory of before held <Bo's ball> and <Bo´s ball>, both forgotten with their events kept: "bo’s BALL"
    # removed the latest seen one's and said "forgot <Bo´s ball>", the other's kept unsaid
    from edge_rap.errors import EdgeRapError

    _log_arrivals(remembered.memory, "Bo's ball", "Bo\u00b4s ball")
    with Household(remembered) as home:
        with pytest.raises(EdgeRapError, match="could be .*: give the name as stored"):
            home.forget("bo’s BALL")
        assert len(home.events.query()) == 2  # nothing removed
        assert home.forget("Bo's ball").name == "Bo's ball"  # its exact spelling: that one
        assert [e.name for e in home.events.query()] == ["Bo\u00b4s ball"]
