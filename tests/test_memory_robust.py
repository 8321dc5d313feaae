"""The memory under the conditions a long-running household process meets: several threads, readers that
start early or read a read-only folder, index files gone or damaged, a damaged database, a full or read-only
disk, and photos with nothing in them. A tiny stand-in embedder (fakes.py) keeps these fast."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEmbedder, agree_with_replaced_photo, fake_memory, top_concept
from scenes import save, scene, scene_file

from edge_rap.errors import EdgeRapError
from edge_rap.memory import index
from edge_rap.memory.index import IndexView, digest, index_files
from edge_rap.memory.memory import Memory
from edge_rap.memory.store import SCHEMA_VERSION, Store
from edge_rap.perceive.embed import SpaceInfo
from edge_rap.perceive.images import read_image_file
from edge_rap.perceive.views import augmented_views
from edge_rap.retrieve.negatives import NegativeBank
from edge_rap.types import Box


@pytest.fixture
def photos(tmp_path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "memory"


def own_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# --- threads ------------------------------------------------------------------------------------------


def test_threads_of_one_process_share_one_memory(root, photos):
    memory = fake_memory(root)
    files = {(t, i): scene_file(photos, 100 * t + i) for t in range(4) for i in range(6)}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(6):
                memory.remember(f"t{t}c{i}", [files[t, i]])
                memory.concepts()
                if i % 2 == 1:
                    memory.forget(f"t{t}c{i - 1}")
        except BaseException as e:  # reported below, with the thread's error
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    expected = {f"t{t}c{i}" for t in range(4) for i in (1, 3, 5)}
    assert {c.name for c in memory.concepts()} == expected
    for name in expected:
        t, i = int(name[1]), int(name[3])
        assert top_concept(memory, files[t, i]) == name
    keys, _ = memory.store.vectors(FakeEmbedder.space.name)
    assert len(memory.view()) == len(keys)
    memory.close()


def _racing(memory, monkeypatch, other) -> None:
    """Run `other()` once, in the moment between `memory`'s look-up of a concept and its write lock."""
    looked_up = memory.store.refuse_taken

    def then_other(*args, **kwargs):
        if kwargs.get("db", args[1] if len(args) > 1 else None) is None and not ran:
            ran.append(True)
            other()
        return looked_up(*args, **kwargs)

    ran: list[bool] = []
    monkeypatch.setattr(memory.store, "refuse_taken", then_other)


def test_a_rename_that_another_writer_overtook_changes_nothing(root, photos, monkeypatch):
    """Two processes renaming one concept at once both said "renamed"; the later one replaced the other's name
    (and, in the household, left the events under the first one's name, detached from the concept)."""
    from edge_rap.memory.store import UnknownConceptError

    memory, other = fake_memory(root), fake_memory(root)
    memory.remember("same", [scene_file(photos, 1)])
    _racing(memory, monkeypatch, lambda: other.rename("same", "theirs"))
    with pytest.raises(UnknownConceptError, match="another writer renamed it to 'theirs'"):
        memory.rename("same", "mine")
    assert [c.name for c in memory.concepts()] == ["theirs"]
    _racing(memory, monkeypatch, lambda: other.forget("theirs"))
    with pytest.raises(UnknownConceptError, match="another writer forgot it"):
        memory.rename("theirs", "mine")
    assert memory.concepts() == []
    memory.close()
    other.close()


def test_a_forget_overtaken_by_a_rename_forgets_nothing(root, photos, monkeypatch):
    """`forget b` beside `rename b bb` in another process: both said done, and <bb> was gone (its events, carried
    to its new name, outlived it). Forget, like rename, changes nothing of a concept renamed since it was looked up."""
    from edge_rap.memory.store import UnknownConceptError

    memory, other = fake_memory(root), fake_memory(root)
    memory.remember("b", [scene_file(photos, 1)])
    looked_up = memory.store.get

    def renamed_first(name):  # another writer renames <b> just after this one looked it up
        concept = looked_up(name)
        other.rename("b", "bb")
        return concept

    monkeypatch.setattr(memory.store, "get", renamed_first)
    with pytest.raises(UnknownConceptError, match="another writer renamed it to 'bb' meanwhile; nothing was changed"):
        memory.forget("b")
    monkeypatch.undo()
    assert [c.name for c in memory.concepts()] == ["bb"]
    assert top_concept(memory, scene_file(photos, 1)) == "bb"
    memory.close()
    other.close()


def test_a_change_overtaken_by_a_rename_answers_the_changed_concept(root, photos, monkeypatch):
    """An edit or a new photo is made to the concept, whatever another writer renamed it to meanwhile: the answer
    is that concept, not "no concept named ..." after the change was made."""
    memory, other = fake_memory(root), fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    changed = memory.store.get

    def renamed_first(name):  # another writer renames <bo> just after this one looked it up
        concept = changed(name)
        if concept.name == "bo":
            other.rename("bo", "bobo")
        return concept

    monkeypatch.setattr(memory.store, "get", renamed_first)
    concept = memory.edit("bo", description="our dog")
    assert (concept.name, concept.description) == ("bobo", "our dog")
    monkeypatch.undo()
    concept = memory.add_views("bobo", [scene_file(photos, 2)])
    assert (concept.name, concept.views) == ("bobo", 2)
    memory.close()
    other.close()


def test_the_negative_bank_is_built_outside_the_write_lock(root, photos):
    class Bank(NegativeBank):
        locked: list[bool] = []

        def _load_or_compute(self) -> np.ndarray:
            self.locked.append(memory.store.db.in_transaction)
            return super()._load_or_compute()

    memory = fake_memory(root)
    memory.negatives = Bank(memory.embedder)
    memory.remember("bo", [scene_file(photos, 1)])
    assert Bank.locked == [False]
    assert memory.store.calibration(FakeEmbedder.space.name)


def test_a_negative_bank_the_disk_has_no_room_for_leaves_no_part_of_it_in_the_cache(tmp_path, monkeypatch):
    def full(file, vectors):
        Path(file).write_bytes(b"\x93NUMPY" + bytes(4096))  # what fitted before the disk was full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full)
    bank = NegativeBank(FakeEmbedder(), tmp_path / "negatives")
    assert len(bank.vectors) == 64  # used all the same, computed again next time
    assert list((tmp_path / "negatives").iterdir()) == []


@pytest.mark.parametrize("damage", ["empty", "garbage inside"])
def test_a_damaged_negative_bank_in_the_cache_is_computed_again(tmp_path, damage):
    """An empty cache file was a traceback at the next remember (EOFError); garbage inside one whose header was
    whole was loaded: every threshold set from it (NaN: "NOT NULL constraint failed")."""
    expected = NegativeBank(FakeEmbedder(), tmp_path / "negatives").vectors
    (path,) = (tmp_path / "negatives").iterdir()
    data = bytearray(path.read_bytes())
    if damage == "empty":
        data = bytearray()
    else:
        data[len(data) // 2: len(data) // 2 + 64] = bytes(range(64))
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(NegativeBank(FakeEmbedder(), tmp_path / "negatives").vectors, expected)
    np.testing.assert_array_equal(np.load(path), expected)  # the cache mended too


def test_close_closes_every_threads_connection(root, photos):
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    seen = []
    thread = threading.Thread(target=lambda: seen.append(memory.store.db))
    thread.start()
    thread.join()
    memory.close()
    memory.close()  # idempotent
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")


# --- readers ------------------------------------------------------------------------------------------


def _read_only_run(folder: Path, code: str, tmp_path: Path) -> str:
    """Run Python `code` with `folder` read-only (a read-only bind mount where we are root); its stdout."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        try:
            for p in modes:
                p.chmod(modes[p] & ~0o222)
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
    else:
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("running as root and no `unshare` to make a read-only mount")
        f = shlex.quote(str(folder))
        shell = f"mount --bind {f} {f} && mount -o remount,bind,ro {f} && exec {shlex.join(cmd)}"
        done = subprocess.run([unshare, "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=120)
        if "mount" in done.stderr and done.returncode != 0:
            pytest.skip(f"running as root and cannot make a read-only mount: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return done.stdout


LIST_CONCEPTS = """
from contextlib import closing
from pathlib import Path
from edge_rap.memory.store import Store
with closing(Store(Path({!r}), readonly=True)) as store:  # closing removes a snapshot copy
    print([c.name for c in store.concepts()])
"""


@pytest.mark.parametrize("with_shm", [True, False])
def test_a_reader_of_a_read_only_folder_sees_the_commits_in_the_wal(root, photos, tmp_path, with_shm):
    """The latest commits may still be in the -wal (a writer running, or killed); `immutable=1` would drop
    them. Without the -shm (a folder copied from a device), SQLite cannot read the -wal in place."""
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    memory.close()  # the last connection: "bo" is merged into the database file
    keeper = sqlite3.connect(root / "memory.sqlite")  # holds the -wal open: no checkpoint when the writer closes
    keeper.execute("PRAGMA wal_autocheckpoint = 0")
    keeper.execute("SELECT COUNT(*) FROM concepts").fetchone()
    memory = fake_memory(root)
    memory.remember("anya", [scene_file(photos, 2)])
    memory.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ["memory.sqlite", "memory.sqlite-wal"] + (["memory.sqlite-shm"] if with_shm else []):
        shutil.copyfile(root / name, copy / name)
    keeper.close()
    assert (copy / "memory.sqlite-wal").stat().st_size > 0
    out = _read_only_run(copy, LIST_CONCEPTS.format(str(copy)), tmp_path)
    assert out.strip() == "['anya', 'bo']"


def test_a_reader_never_migrates(root, photos):
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    memory.close()
    db = sqlite3.connect(root / "memory.sqlite")
    db.executescript("ALTER TABLE views DROP COLUMN kind; PRAGMA user_version = 1;")
    db.close()
    reader = Store(root, readonly=True)  # it reads an upgraded private copy
    assert [c.name for c in reader.concepts()] == ["bo"]
    reader.close()
    db = sqlite3.connect(root / "memory.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1  # untouched
    db.close()
    writer = Store(root)  # a writer upgrades it
    assert writer.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    writer.close()
    assert [c.name for c in Store(root, readonly=True).concepts()] == ["bo"]


#: A memory of each older schema, made from one of today's: 0 had no face views (views.kind) nor cells, 1 no face
#: views, 2 its boxes in the photo's stored pixels (an EXIF-turned photo's box is turned upright by the upgrade).
OLDER_SCHEMAS = {
    0: "ALTER TABLE views DROP COLUMN kind; DROP TABLE cells; PRAGMA user_version = 0;",
    1: "ALTER TABLE views DROP COLUMN kind; PRAGMA user_version = 1;",
    2: "PRAGMA user_version = 2;",
}

READ_AND_SEARCH = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from fakes import fake_memory, top_concept
memory = fake_memory(Path({root!r}), readonly=True)
print([c.name for c in memory.concepts()], top_concept(memory, Path({photo!r})), [v.box for v in memory.store.views()])
memory.close()
"""


def _memory_of_schema(root: Path, photos: Path, schema: int) -> None:
    """bo, and a mug boxed in a photo stored sideways (EXIF 6), as an edge_rap of `schema` wrote them."""
    from PIL import Image

    photos.mkdir(parents=True, exist_ok=True)
    sideways = photos / "sideways.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(scene(7)).resize((600, 400)).save(sideways, exif=exif)
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    memory.remember("mug", [sideways], box=Box(250, 100, 350, 200))  # upright pixels: the photo is 400 x 600
    memory.close()
    db = sqlite3.connect(root / "memory.sqlite", isolation_level=None)
    db.execute("UPDATE views SET box = '100,50,200,150' WHERE box IS NOT NULL")  # the region in stored pixels
    db.executescript(OLDER_SCHEMAS[schema])
    db.close()


@pytest.mark.parametrize("schema", sorted(OLDER_SCHEMAS))
def test_a_memory_of_an_older_schema_in_a_read_only_folder_is_read(root, photos, tmp_path, schema):
    # every reader refused it: "a reader does not upgrade it: run any command that changes the memory", which a
    # read-only folder (a backup mounted read-only, a memory copied from another device to look at) cannot take
    _memory_of_schema(root, photos, schema)
    before = (root / "memory.sqlite").read_bytes()
    code = READ_AND_SEARCH.format(tests=str(Path(__file__).parent), root=str(root), photo=str(scene_file(photos, 1)))
    out = _read_only_run(root, code, tmp_path)
    assert out.strip() == "['bo', 'mug'] bo [None, Box(x0=250, y0=100, x1=350, y1=200)]"  # read as upgraded
    assert (root / "memory.sqlite").read_bytes() == before


def test_an_older_schema_that_cannot_be_copied_to_be_read_is_one_line_saying_what_to_do(root, photos, monkeypatch):
    _memory_of_schema(root, photos, 2)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tempfile.mkdtemp", full)
    with pytest.raises(EdgeRapError, match=r"older edge_rap \(schema 2\); reading it needs an upgraded copy in .*"
                                           r"No space left on device.*make room there") as e:
        Store(root, readonly=True)
    assert "\n" not in str(e.value)


def test_a_reader_started_before_the_memory_exists_sees_it_appear(root, photos):
    reader = fake_memory(root, readonly=True)
    view = reader.view()
    assert reader.concepts() == [] and len(view) == 0
    assert not root.exists()
    writer = fake_memory(root)
    writer.remember("bo", [scene_file(photos, 1)])
    assert [c.name for c in reader.concepts()] == ["bo"]
    assert len(view) > 0 and top_concept(reader, scene_file(photos, 1)) == "bo"
    writer.close()
    reader.close()


# --- index files ----------------------------------------------------------------------------------------


def test_a_missing_index_file_is_rebuilt_from_the_database_with_a_warning(root, photos, caplog):
    writer = fake_memory(root)
    for i in range(3):
        writer.remember(f"c{i}", [scene_file(photos, i)])
    for path in (root / "index").iterdir():
        path.unlink()
    reader = fake_memory(root, readonly=True)
    with caplog.at_level(logging.WARNING):
        assert [top_concept(reader, scene_file(photos, i)) for i in range(3)] == ["c0", "c1", "c2"]
    assert "missing, unreadable or damaged" in caplog.text
    writer.remember("c3", [scene_file(photos, 3)])  # a writer rewrites it from the database too
    assert [top_concept(writer, scene_file(photos, i)) for i in range(4)] == ["c0", "c1", "c2", "c3"]
    assert list((root / "index").glob("*.usearch"))


def test_an_unreadable_index_file_is_rebuilt_once_not_on_every_search(root, photos, monkeypatch):
    writer = fake_memory(root)
    writer.remember("bo", [scene_file(photos, 1)])
    (index_file,) = (root / "index").iterdir()
    index_file.write_bytes(b"not an index" * 100)
    reader = fake_memory(root, readonly=True)
    reads = []
    vectors = Store.vectors
    monkeypatch.setattr(Store, "vectors", lambda self, *a, **k: reads.append(1) or vectors(self, *a, **k))
    view = IndexView(reader.store, FakeEmbedder.space.name)
    query = FakeEmbedder().embed([scene(1)])[0]
    for _ in range(5):
        assert view.search(query, 5)[0].concept_id == reader.get("bo").id
    assert len(reads) == 1


@pytest.mark.parametrize("size", [0, 4096])
def test_an_index_file_truncated_under_a_running_reader_is_read_again_not_a_sigbus(root, photos, size):
    # Before: the reader kept the file mapped as it was: truncated under it (a pulled drive, another process rewriting
    # it), its next search read past the file's end, SIGBUS, the daemon killed without a line. Run in a process of
    # its own: a SIGBUS there fails the test, not pytest
    writer = fake_memory(root)
    for i in range(30):
        writer.remember(f"c{i}", [scene_file(photos, i)])
    with writer.store.transaction() as db:  # (every concept in one file, larger than a page)
        writer.writer.write(db, FakeEmbedder.space.name)
        writer.writer.collect_garbage(db)
    writer.close()
    (path,) = (root / "index").iterdir()
    assert path.stat().st_size > 2 * 4096 > size
    script = TRUNCATE_UNDER_A_READER.format(tests=str(Path(__file__).parent), root=str(root), path=str(path),
                                            photos=str(photos), size=size)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["c0", "c1", "c2", "c0", "c1", "c2", "c0", "c1", "c2"]
    assert done.stderr.count(f"index file {path.name} changed while it was in use") == 1, done.stderr


def three_concepts_and_a_reader(root: Path, photos: Path):
    """A memory of c0, c1 and c2 and a reader's view of it, with what that view finds first for each one's photo."""
    writer = fake_memory(root)
    for i in range(3):
        writer.remember(f"c{i}", [scene_file(photos, i)])
    reader = fake_memory(root, readonly=True)
    view = reader.view()
    queries = [FakeEmbedder().embed([scene(i)])[0] for i in range(3)]
    names = {c.id: c.name for c in reader.concepts()}
    return view, lambda: [names[view.search(query, 10)[0].concept_id] for query in queries]


def flip_last_bytes(path: Path) -> None:
    """Other bytes written in place, the size kept."""
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        last = f.read(8)
        f.seek(-8, os.SEEK_END)
        f.write(bytes(255 - b for b in last))


def test_an_index_file_whose_last_write_alone_changed_is_read_again_unsaid(root, photos, caplog):
    # Before: `touch` (a backup tool setting its time, the same bytes copied over it) was said as "changed while it
    # was in use (truncated or rewritten by another process?)", at every touch; other bytes of its size written in
    # place were said so too, beside the line saying it damaged
    _, found = three_concepts_and_a_reader(root, photos)
    with caplog.at_level(logging.WARNING):
        assert found() == ["c0", "c1", "c2"]
        path = max((root / "index").iterdir(), key=lambda p: p.stat().st_size)
        for later in (1, 2):
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + later * 10**9))
            assert found() == ["c0", "c1", "c2"]
        assert caplog.text == ""
        flip_last_bytes(path)
        assert found() == ["c0", "c1", "c2"]
    assert "changed while it was in use" not in caplog.text
    assert caplog.text.count(f"index file {path.name} is missing, unreadable or damaged") == 1


def test_an_index_file_rewritten_in_place_with_its_old_times_set_back_is_seen(root, photos, caplog):
    # Before: only its size and last write were compared: other bytes of its size, its last write set back to what it
    # was (`os.utime`, as a copy keeping times does), were searched as the file mapped, unsaid
    _, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"]
    path = max((root / "index").iterdir(), key=lambda p: p.stat().st_size)
    was = path.stat()
    flip_last_bytes(path)
    os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (was.st_size, was.st_mtime_ns)
    with caplog.at_level(logging.WARNING):
        assert found() == ["c0", "c1", "c2"] and found() == ["c0", "c1", "c2"]
    assert caplog.text.count(f"index file {path.name} is missing, unreadable or damaged") == 1, caplog.text


def test_an_index_file_rewritten_within_its_timestamp_step_is_looked_at_once_the_step_passed(root, photos, caplog,
                                                                                           monkeypatch):
    # Before: a rewrite in place within the filesystem's timestamp step of the file's last change (FAT's 2 s) can leave
    # its size and times as they were when mapped ("racy git"): never seen. Here a filesystem whose times do not move
    # at all, and a step that has not passed when the files are mapped, then has
    _, found = three_concepts_and_a_reader(root, photos)
    real, first_times = index._file_state, {}

    def times_kept(path: Path) -> index.FileState:
        state = real(path)
        return dataclasses.replace(state, times=first_times.setdefault(path, state.times))

    monkeypatch.setattr(index, "_file_state", times_kept)
    monkeypatch.setattr(index, "TIMESTAMP_STEP_NS", 10**18)
    assert found() == ["c0", "c1", "c2"]
    path = max((root / "index").iterdir(), key=lambda p: p.stat().st_size)
    flip_last_bytes(path)
    assert found() == ["c0", "c1", "c2"]  # (within the step: its times cannot tell yet)
    monkeypatch.setattr(index, "TIMESTAMP_STEP_NS", 0)
    with caplog.at_level(logging.WARNING):
        assert found() == ["c0", "c1", "c2"] and found() == ["c0", "c1", "c2"]
    assert caplog.text.count(f"index file {path.name} is missing, unreadable or damaged") == 1, caplog.text


def test_index_files_mapped_within_their_timestamp_step_are_read_once_when_it_passed(root, photos, monkeypatch):
    # their bytes are looked at once, not at every search (a sha256 of 21 MB at 1000 concepts: 12 ms)
    view, found = three_concepts_and_a_reader(root, photos)
    monkeypatch.setattr(index, "TIMESTAMP_STEP_NS", 10**18)
    assert found() == ["c0", "c1", "c2"]
    read = []
    monkeypatch.setattr(index, "digest", lambda data: read.append(1) or digest(data))
    monkeypatch.setattr(index, "TIMESTAMP_STEP_NS", 0)
    for _ in range(3):
        assert found() == ["c0", "c1", "c2"]
    assert len(read) == len(view.indexes) > 0


@pytest.mark.parametrize("how", ["gone", "unreadable"])
def test_index_files_gone_from_under_a_reader_are_let_go_and_the_database_searched(root, photos, caplog, monkeypatch,
                                                                                   how):
    # Before: files gone from their folder (a pulled drive's, removed by hand or by another process making room) or
    # whose stat failed (EIO) stayed mapped unsaid: on a pulled drive a page not yet read is a SIGBUS
    view, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"]
    if how == "gone":
        (root / "index").rename(root / "elsewhere")
    else:
        def failing(path: Path):
            raise OSError(errno.EIO, "Input/output error", str(path))
        monkeypatch.setattr(index, "_file_state", failing)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert found() == ["c0", "c1", "c2"]
    assert not view._mapped and len(view.indexes) == 1  # (one index built from the database's vectors)
    assert caplog.text.count("is missing, unreadable or damaged; searching the vectors in the database") == 1


def test_threads_searching_at_once_say_a_changed_index_file_once(root, photos, caplog, monkeypatch):
    # Before: each thread searching when it changed saw the change and said it: two lines for one change
    _, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"]
    path = max((root / "index").iterdir(), key=lambda p: p.stat().st_size)
    with open(path, "ab") as f:
        f.write(b"more")  # (grown: no search can read past its end)
    real, both_there, arrived = index._file_state, threading.Barrier(2, timeout=2), set()

    def meeting(path: Path):  # each thread's first look waits for the other's, as two searches at once
        if threading.get_ident() not in arrived:
            arrived.add(threading.get_ident())
            with contextlib.suppress(threading.BrokenBarrierError):  # (the other kept out: no meeting)
                both_there.wait()
        return real(path)

    monkeypatch.setattr(index, "_file_state", meeting)
    answers: list = []
    with caplog.at_level(logging.WARNING):
        threads = [threading.Thread(target=lambda: answers.append(found())) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [["c0", "c1", "c2"]] * 2
    assert caplog.text.count(f"index file {path.name} changed while it was in use") == 1, caplog.text
    assert caplog.text.count(f"index file {path.name} is missing, unreadable or damaged") == 1, caplog.text


@pytest.mark.parametrize("how", ["folder renamed back", "good copy put back"])
def test_index_files_back_under_a_reader_are_mapped_again(root, photos, caplog, monkeypatch, how):
    # Before: once searching the database's vectors, a reader stayed so until the next write, whatever came back (a
    # drive mounted again, a folder renamed back, a damaged file put right): the vectors held in RAM, for months
    view, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"]
    mapped = dict(view._mapped)
    path = max(mapped, key=lambda p: p.stat().st_size)
    if how == "folder renamed back":
        (root / "index").rename(root / "elsewhere")
    else:
        flip_last_bytes(path)
    with caplog.at_level(logging.WARNING):
        assert found() == ["c0", "c1", "c2"]
        read = []
        monkeypatch.setattr(index, "digest", lambda data: read.append(1) or digest(data))
        assert found() == ["c0", "c1", "c2"] and not read  # (while not back, no file is read at each search)
        if how == "folder renamed back":
            (root / "elsewhere").rename(root / "index")
        else:
            flip_last_bytes(path)
        assert found() == ["c0", "c1", "c2"]
    assert view._mapped.keys() == mapped.keys() and len(view.indexes) == len(mapped)
    assert caplog.text.count("is missing, unreadable or damaged; searching the vectors in the database") == 1


def test_a_search_while_another_thread_maps_the_files_again_searches_what_was_mapped(root, photos, monkeypatch):
    # Before: a search read the view's indexes after its refresh, unlocked: another thread's refresh, which lets go of
    # them before it maps the files again (their times changed), left it none to search: nothing found
    view, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"]
    real_restore, real_refresh, mapping, go_on, other = index._restore, view.refresh, threading.Event(), \
        threading.Event(), []

    def held(path: Path, view: bool = False):  # (the other thread's mapping, until this search is done)
        mapping.set()
        go_on.wait(10)
        return real_restore(path, view)

    def refreshed_then_another_thread_maps_again():
        if other:  # (the next search: the other thread done first)
            go_on.set()
            other[0].join()
            return real_refresh()
        indexes = real_refresh()
        for path in view._mapped:
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
        monkeypatch.setattr(index, "_restore", held)
        other.append(threading.Thread(target=real_refresh))
        other[0].start()
        assert mapping.wait(10) and not view.indexes  # (the other thread let go of them, mapping anew)
        return indexes

    monkeypatch.setattr(view, "refresh", refreshed_then_another_thread_maps_again)
    assert found() == ["c0", "c1", "c2"]


def test_the_warning_names_only_the_bad_index_files(root, photos, caplog, monkeypatch):
    # Before: "index file base delta1 delta2 is missing, unreadable or damaged": every listed file, one of them bad
    monkeypatch.setattr(index, "DELTA_SHARE", 0)  # (each remember writes a delta: a base and two deltas)
    view, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"]
    bad, *good = sorted(view._mapped, key=lambda p: -p.stat().st_size)
    assert len(good) == 2
    flip_last_bytes(bad)
    with caplog.at_level(logging.WARNING):
        assert found() == ["c0", "c1", "c2"]
    assert f"index file {bad.name} is missing, unreadable or damaged" in caplog.text, caplog.text
    assert [path.name for path in good if path.name in caplog.text] == []


def test_a_damaged_index_file_is_read_once_not_once_per_retry(root, photos, monkeypatch):
    # Before: a reader read and hashed every listed file 5 times (21 MB each time at 1000 concepts) before searching
    # the database's vectors: its retries are for a row swapped under it, and this one was not
    monkeypatch.setattr(index, "DELTA_SHARE", 0)  # (each remember writes a delta: a base and two deltas)
    view, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"] and len(view._mapped) == 3
    flip_last_bytes(max(view._mapped, key=lambda p: p.stat().st_size))
    restored, real = [], index._restore
    monkeypatch.setattr(index, "_restore", lambda path, view=False: restored.append(path) or real(path, view))
    assert found() == ["c0", "c1", "c2"]
    assert sorted(restored) == sorted(view._unmapped)


def test_a_missing_index_file_has_none_of_the_others_read_and_is_named_alone(root, photos, caplog, monkeypatch):
    # Untested claim of 316b1b9c: reading them all the same (the base hashed whole, 21 MB at 1000 concepts) passed
    # every test, and the warning named the missing file twice ("index file delta1 delta1 is missing")
    monkeypatch.setattr(index, "DELTA_SHARE", 0)  # (each remember writes a delta: a base and two deltas)
    view, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"] and len(view._mapped) == 3
    missing = min(view._mapped, key=lambda p: p.stat().st_size)
    missing.unlink()
    restored, real = [], index._restore
    monkeypatch.setattr(index, "_restore", lambda path, view=False: restored.append(path) or real(path, view))
    with caplog.at_level(logging.WARNING):
        assert found() == ["c0", "c1", "c2"]
    assert restored == []
    assert f"index file {missing.name} is missing, unreadable or damaged; searching" in caplog.text, caplog.text


def test_a_forget_while_a_reader_maps_the_files_leaves_none_mapped(root, photos, monkeypatch):
    # Before: `drop_files` let go of the readers' files unlocked, then deleted them: a search mapping them meanwhile
    # kept them mapped after, and a forget on a full disk freed nothing for its commit
    writer = fake_memory(root)
    view, _ = three_concepts_and_a_reader(root, photos)
    last = view.store.root / "index" / index_files(view.store.space(view.space)[4])[-1]
    real, mapped, go_on, forgetting = index._restore, threading.Event(), threading.Event(), threading.Event()

    def held(path: Path, view: bool = False):  # (the search's mapping, done but not yet kept, until the forget's)
        restored = real(path, view)
        if path == last:
            mapped.set()
            go_on.wait(10)
        return restored

    class Announced:  # (the forget thread at the view's lock, or done without it)
        def __init__(self, lock):
            self.lock = lock

        def __enter__(self):
            forgetting.set()
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    monkeypatch.setattr(index, "_restore", held)
    search = threading.Thread(target=view.refresh)  # (one search: the next would see them gone)
    search.start()
    assert mapped.wait(10)
    monkeypatch.setattr(view, "_refreshing", Announced(view._refreshing))
    dropped = [path.name for path in (root / "index").iterdir()]
    forget = threading.Thread(target=lambda: writer.writer.drop_files(view.space, writer.store.db) or forgetting.set())
    forget.start()
    assert forgetting.wait(10)
    go_on.set()
    search.join()
    forget.join()
    maps = Path("/proc/self/maps").read_text()
    assert not view._mapped and [name for name in dropped if name in maps] == []


def test_a_search_just_after_a_forget_let_go_of_the_files_maps_none_it_deletes(root, photos, monkeypatch):
    # Before: `drop_files` let go of the readers' files before deleting them: a search in between mapped them again
    writer = fake_memory(root)
    view, found = three_concepts_and_a_reader(root, photos)
    assert found() == ["c0", "c1", "c2"]
    let_go = view.let_go
    monkeypatch.setattr(view, "let_go", lambda: let_go() or view.refresh())  # (another thread's search, then)
    writer.writer.drop_files(view.space, writer.store.db)
    assert not view._mapped


TRUNCATE_UNDER_A_READER = """
import logging, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from fakes import fake_memory
from scenes import scene_file
from edge_rap.perceive.images import read_image_file
logging.basicConfig(format="%(levelname)s %(message)s")
memory = fake_memory(Path({root!r}), readonly=True)
view = memory.view()  # (one view, mapped once, as a running daemon's retriever keeps it)
photos = [scene_file(Path({photos!r}), i) for i in range(3)]
queries = [memory.embedder.embed([read_image_file(photo).image.pixels])[0] for photo in photos]
names = {{c.id: c.name for c in memory.concepts()}}
for k in range(3):
    if k == 1:
        os.truncate({path!r}, {size})
    print(*(names[view.search(query, 10)[0].concept_id] for query in queries), flush=True)
"""


def test_an_index_file_damaged_inside_is_not_searched(root, photos, caplog):
    """Damage that leaves a file's header whole (a bad sector, a bit flip) loads as an index: here one concept's
    vectors replaced by another's, which answered the wrong concept (or garbage vectors, NaN scores)."""
    writer = fake_memory(root)
    for i in range(2):
        writer.remember(f"c{i}", [scene_file(photos, i)])
    with writer.store.transaction() as db:  # both concepts in one file
        writer.writer.write(db, FakeEmbedder.space.name)
        writer.writer.collect_garbage(db)
    (path,) = (root / "index").iterdir()
    ids = [writer.get(f"c{i}").id for i in range(2)]
    c0, c1 = (writer.store.concept_vectors(i, FakeEmbedder.space.name).astype(np.float32) for i in ids)
    data = path.read_bytes()
    for vector in c0:  # each of c0's vectors (in the order usearch's threads stored them) made c1's first
        assert data.count(vector.tobytes()) == 1
        data = data.replace(vector.tobytes(), c1[0].tobytes())
    path.write_bytes(data)
    reader = fake_memory(root, readonly=True)
    with caplog.at_level(logging.WARNING):
        assert [top_concept(reader, scene_file(photos, i)) for i in range(2)] == ["c0", "c1"]
    assert "damaged" in caplog.text


# --- a read-only folder, a damaged database ---------------------------------------------------------------


def test_a_read_only_folder_gives_one_line_and_changes_nothing(root, photos, monkeypatch):
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    memory.remember("anya", [scene_file(photos, 2)])  # a delta file beside bo's base
    memory.remember("ziggy", [scene_file(photos, 4)])  # compacts: the previous index files are left to collect
    before = own_files(root / "index") + own_files(root / "images")

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    for write in (lambda: memory.forget("bo"), lambda: memory.remember("cat", [scene_file(photos, 3)])):
        with pytest.raises(EdgeRapError, match="not writable") as e:
            write()
        assert "\n" not in str(e.value)
    monkeypatch.undo()
    assert [c.name for c in memory.concepts()] == ["anya", "bo", "ziggy"]
    assert top_concept(memory, scene_file(photos, 1)) == "bo"
    assert set(before) <= set(own_files(root / "index") + own_files(root / "images"))


def test_a_damaged_database_gives_one_line_naming_it(root, photos):
    memory = fake_memory(root)
    for i in range(8):
        memory.remember(f"c{i}", [scene_file(photos, i)], "words " * 200)
    memory.close()
    path = root / "memory.sqlite"
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    data[4096:] = np.random.default_rng(0).integers(0, 256, len(data) - 4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    for action in (lambda m: m.remember("new", [scene_file(photos, 20)]), lambda m: m.forget("c1"),
                   lambda m: m.concepts(), lambda m: m.reindex()):
        with pytest.raises(EdgeRapError) as e:
            action(fake_memory(root))
        assert str(path) in str(e.value) and "\n" not in str(e.value)


# --- a full disk ------------------------------------------------------------------------------------------


def test_a_commit_that_fails_leaves_no_photo_behind(root, photos, monkeypatch):
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    before = own_files(root / "images")
    insert_view = Store.insert_view

    def failing_at_commit(self, db, *args, **kwargs):  # an orphan row that only the commit refuses
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute("INSERT INTO views (concept_id, image_sha256, image_file, created) VALUES (999999, 'x', 'x', 0)")
        return insert_view(self, db, *args, **kwargs)

    monkeypatch.setattr(Store, "insert_view", failing_at_commit)
    with pytest.raises(EdgeRapError):
        memory.remember("anya", [scene_file(photos, 2)])
    monkeypatch.undo()
    assert own_files(root / "images") == before
    assert [c.name for c in memory.concepts()] == ["bo"]


def test_a_forget_whose_photos_cannot_be_deleted_yet_is_done_and_says_so(root, photos, monkeypatch, caplog):
    # its photos' folder made read-only: the concept was forgotten (committed), then "memory folder is not writable
    # (Permission denied); nothing was changed", and its events were kept
    memory = fake_memory(root)
    for i in range(2):
        memory.remember(f"c{i}", [scene_file(photos, i)])
    unlink = Path.unlink

    def read_only_folder(self, missing_ok=False):
        if self.parent.parent.name == "images":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        unlink(self, missing_ok=missing_ok)

    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
        patched.setattr(Path, "unlink", read_only_folder)
        assert memory.forget("c1").name == "c1"
    assert [c.name for c in memory.concepts()] == ["c0"]
    assert "forgotten, but a photo could not be deleted yet (" in caplog.text
    assert "nothing was changed" not in caplog.text and "a later remember or forget deletes it" in caplog.text
    assert len(list((root / "images").glob("*/*"))) == 2
    memory.remember("c2", [scene_file(photos, 2)])  # as it says
    assert len(list((root / "images").glob("*/*"))) == 2


def test_a_photo_a_forget_left_in_a_read_only_folder_refuses_no_later_change(root, photos, monkeypatch, caplog):
    # the photo a forget could not delete (its images/xx/ read-only) made every later remember and forget "memory
    # folder is not writable (Permission denied); nothing was changed", naming the memory's folder, not the photo's
    memory = fake_memory(root)
    for i in range(2):
        memory.remember(f"c{i}", [scene_file(photos, i)])
    kept = {p.parent.name for p in (root / "images").glob("*/*")}
    unlink = Path.unlink

    def read_only_folder(self, missing_ok=False):
        if self.parent.parent.name == "images" and self.parent.name in kept:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        unlink(self, missing_ok=missing_ok)

    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
        patched.setattr(Path, "unlink", read_only_folder)
        memory.forget("c1")
        assert len(list((root / "images").glob("*/*"))) == 2
        assert f"forgotten, but a photo could not be deleted yet ({root / 'images'}" in caplog.text
        assert "memory folder is not writable" not in caplog.text
        memory.remember("c2", [scene_file(photos, 2)])
        memory.forget("c0")
    assert [c.name for c in memory.concepts()] == ["c2"]
    assert len(list((root / "images").glob("*/*"))) == 3  # c2's, and the two that c0 and c1 left
    memory.remember("c3", [scene_file(photos, 3)])  # the folders writable again: the photos left go
    assert len(list((root / "images").glob("*/*"))) == 2


def test_forget_works_on_a_full_disk(root, photos, monkeypatch):
    """A full disk: a file can be written only into room that deleting files made. Forgetting is how the
    user makes room, so it must work there."""
    import stat

    memory = fake_memory(root)
    for i in range(3):
        memory.remember(f"c{i}", [scene_file(photos, i)])
    with memory.store.transaction() as db:  # no superseded index file left to free
        memory.writer.collect_garbage(db)
    room = [0]
    unlink, fsync = Path.unlink, os.fsync

    def counted_unlink(self, missing_ok=False):
        size = self.stat().st_size if self.exists() else 0
        unlink(self, missing_ok=missing_ok)
        room[0] += size

    def full_fsync(fd):  # a written file (a photo, an index) finds out at its fsync that it did not fit
        size = os.fstat(fd).st_size if stat.S_ISREG(os.fstat(fd).st_mode) else 0
        if size > room[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        room[0] -= size
        fsync(fd)

    monkeypatch.setattr(Path, "unlink", counted_unlink)
    monkeypatch.setattr(os, "fsync", full_fsync)
    with pytest.raises(EdgeRapError, match="disk is full"):
        memory.remember("c3", [scene_file(photos, 3)])
    room[0] = 0  # the room its photo took up and gave back is taken by something else meanwhile
    memory.forget("c1")
    monkeypatch.undo()
    assert [c.name for c in memory.concepts()] == ["c0", "c2"]
    assert [top_concept(memory, scene_file(photos, i)) for i in (0, 2)] == ["c0", "c2"]
    assert top_concept(memory, scene_file(photos, 1)) != "c1"
    assert len(list((root / "images").glob("*/*"))) == 2


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="Linux's /proc/self/maps shows the files mapped")
def test_a_forget_on_a_full_disk_has_this_processs_readers_let_go_of_the_index_files_it_deletes(root, photos,
                                                                                                  monkeypatch):
    """A deleted file's room is freed once no process maps it, and `serve` and `run` map the index files to
    recognise: a forget from the phone (or by voice) on a full disk freed nothing for its commit, "disk is full"
    (507, on a 3 MB tmpfs under `serve`), though deleting the index files first is how it makes room."""
    from edge_rap.memory.store import DiskFullError

    memory = fake_memory(root)
    for i in range(3):
        memory.remember(f"c{i}", [scene_file(photos, i)])
    reader = memory.view()
    assert top_concept(memory, scene_file(photos, 2)) == "c2" and len(reader)  # mapped, as a running server's are
    dropped = {p.name for p in (root / "index").iterdir()}

    def full(concept):
        raise DiskFullError(root, "disk is full; nothing was changed")

    monkeypatch.setattr(memory, "_forget", full)  # the first try meets the full disk
    memory.forget("c1")
    mapped = Path("/proc/self/maps").read_text()
    assert [name for name in dropped if name in mapped] == []
    assert [hit.concept_id for hit in reader.search(memory.embedder.embed(
        [read_image_file(scene_file(photos, 2)).image.pixels])[0], 10)][:1] == [memory.store.get("c2").id]


def test_readers_made_in_another_thread_meanwhile_never_fail_a_forget_on_a_full_disk(root, photos):
    """The writer lists this process's readers to let go of the files it deletes, while another thread may make
    one (a retriever opened by the first request): a WeakSet listed as another thread adds to it fails, "Set
    changed size during iteration", and with it the forget."""
    memory = fake_memory(root)
    memory.remember("c0", [scene_file(photos, 0)])
    space = memory.embedder.space.name
    stop, kept, failed, interval = threading.Event(), [], [], sys.getswitchinterval()

    def make_readers():
        while not stop.is_set():
            kept.append(IndexView(memory.store, space))
            del kept[:-200]

    thread = threading.Thread(target=make_readers)
    sys.setswitchinterval(1e-6)  # (the threads take turns often: the race is met within the test)
    thread.start()
    try:
        for _ in range(20_000):
            try:
                memory.writer.drop_files(space, memory.store.db)
            except RuntimeError as e:
                failed.append(str(e))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert failed == []


def test_forget_works_on_a_full_disk_where_the_database_needs_the_room_the_index_held(root, photos, monkeypatch):
    """On a real full disk the database's commit needs room too (its -wal grows by the pages it changes): the
    room the deleted index files free must go to it, not to their successors, which the forgotten photos'
    room then takes."""
    import stat
    from contextlib import contextmanager

    memory = fake_memory(root)
    for i in range(3):
        memory.remember(f"c{i}", [scene_file(photos, i)])
    with memory.store.transaction() as db:  # no superseded index file left to free
        memory.writer.collect_garbage(db)
    index_room = sum(p.stat().st_size for p in (root / "index").iterdir())
    room = [0]
    unlink, fsync, transaction = Path.unlink, os.fsync, Store.transaction

    def counted_unlink(self, missing_ok=False):
        size = self.stat().st_size if self.exists() else 0
        unlink(self, missing_ok=missing_ok)
        room[0] += size

    def full_fsync(fd):
        size = os.fstat(fd).st_size if stat.S_ISREG(os.fstat(fd).st_mode) else 0
        if size > room[0]:
            os.ftruncate(fd, 0)  # what did not fit was never written: deleting it frees nothing
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        room[0] -= size
        fsync(fd)

    @contextmanager
    def wal_needs_room(self):  # a commit that changed rows needs room for half the index's size
        with transaction(self) as db:
            changes = db.total_changes
            yield db
            if db.total_changes != changes:
                if room[0] < index_room // 2:
                    raise sqlite3.OperationalError("database or disk is full")
                room[0] -= index_room // 2

    monkeypatch.setattr(Path, "unlink", counted_unlink)
    monkeypatch.setattr(os, "fsync", full_fsync)
    monkeypatch.setattr(Store, "transaction", wal_needs_room)
    memory.forget("c1")
    monkeypatch.undo()
    assert [c.name for c in memory.concepts()] == ["c0", "c2"]
    assert [top_concept(memory, scene_file(photos, i)) for i in (0, 2)] == ["c0", "c2"]
    assert len(list((root / "images").glob("*/*"))) == 2
    assert len(memory.view()) == len(memory.store.vectors("fake")[0])  # the index written again, in step


def test_a_delete_on_a_full_disk_does_not_write_zeros_over_the_pages_it_frees(root):
    """SQLite's secure_delete (on in Debian's build) writes every freed page again, zeroed: on a full disk the
    commit of a forget would need as much room as the concept held."""
    store = Store(root)
    with store.transaction() as db:
        concept_id = store.insert_concept(db, "bo", "", "")
        view_id = store.insert_view(db, concept_id, "0" * 64, "00/x.jpg", None)
        db.execute("INSERT INTO spaces (name, model, fingerprint, dim) VALUES ('s', 'm', 'f', 4)")
        store.insert_cells(db, view_id, "s", np.ones((100_000, 4), np.float16))  # 800 kB of its own pages
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.execute("PRAGMA secure_delete = ON")
    with store.transaction() as db:
        store.delete_concept(db, concept_id, zero_freed=False)
    assert (root / "memory.sqlite-wal").stat().st_size < 200_000
    assert store.db.execute("PRAGMA secure_delete").fetchone()[0] == 1  # as it was, for every other delete


def test_a_write_that_waited_too_long_for_another_process_says_so(root, photos, monkeypatch):
    # it said "database error (database is locked)"
    from edge_rap.memory import store as store_module

    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)])
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)
    waiting = fake_memory(root)
    other = sqlite3.connect(root / "memory.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's reindex, holding the write lock
    with pytest.raises(EdgeRapError, match=r"another process has been changing the memory for 0.05 s .*nothing was "
                                           "changed: try again when it is done"):
        waiting.remember("anya", [scene_file(photos, 2)])
    other.execute("ROLLBACK")
    waiting.remember("anya", [scene_file(photos, 2)])
    assert [c.name for c in waiting.concepts()] == ["anya", "bo"]


# --- featureless photos -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pixels, reason", [
    (np.full((200, 300, 3), 128, np.uint8), "uniform"),
    (np.full((1, 1, 3), 30, np.uint8), "1 x 1 pixels"),
    (np.random.default_rng(0).integers(0, 256, (8, 200, 3), dtype=np.uint8), "200 x 8 pixels"),
])
def test_a_photo_with_nothing_in_it_is_refused(root, photos, pixels, reason):
    photos.mkdir()
    path = save(photos / "flat.png", pixels)
    memory = fake_memory(root)
    with pytest.raises(EdgeRapError, match="no detail") as e:
        memory.remember("wall", [path])
    assert reason in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    assert memory.concepts() == [] and own_files(root / "images") == []
    memory.remember("scene", [scene_file(photos, 1)])  # a real photo still is


def test_a_box_of_a_plain_area_is_refused_though_its_noise_spreads_it(root, photos):
    # a --box over a white table top in a JPEG (its noise: a spread of about 3) was taken, and the concept was then
    # seen in the blank parts of every frame (0.9 on a grey wall)
    pixels = scene(1, 320, 240).copy()
    pixels[:, :160] = np.clip(235 + np.random.default_rng(0).normal(0, 3, (240, 160, 3)), 0, 255).astype(np.uint8)
    photos.mkdir()
    path = save(photos / "table.png", pixels)
    memory = fake_memory(root)
    with pytest.raises(EdgeRapError, match=r"\(its box\) has no detail \(uniform\)"):
        memory.remember("table", [path], box=Box(0, 0, 150, 240))
    assert memory.concepts() == []
    memory.remember("toy", [path], box=Box(170, 0, 320, 240))  # the detailed half of the same photo still is


def test_a_photo_taken_at_night_is_taken_whole_or_boxed_though_it_spreads_as_little_as_a_plain_box(root, photos):
    # a photo with a tenth of the light (a spread of 3.7) was refused as "uniform", whole or boxed, once a box's
    # limit of 8 applied to every photo; its detail is dim, not missing (dark dev photos matched their own concept,
    # not another's, docs/BENCHMARKS.md); a plain table top in it is still plain beside the rest
    pixels = (scene(1, 320, 240) * 0.1).astype(np.uint8)
    pixels[:, :100] = np.clip(24 + np.random.default_rng(0).normal(0, 1, (240, 100, 3)), 0, 255).astype(np.uint8)
    photos.mkdir()
    path = save(photos / "night.png", pixels)
    memory = fake_memory(root)
    memory.remember("mochi", [path])
    memory.remember("toy", [path], box=Box(120, 0, 320, 240))
    with pytest.raises(EdgeRapError, match=r"\(its box\) has no detail \(uniform\)"):
        memory.remember("table", [path], box=Box(0, 0, 90, 240))
    assert [c.name for c in memory.concepts()] == ["mochi", "toy"]


def test_a_new_memory_on_a_full_disk_says_the_disk_is_full(tmp_path):
    # SQLite rolls back itself on a full disk: rolling back again said "cannot rollback - no transaction is active"
    from edge_rap.memory.store import create

    real = sqlite3.connect(tmp_path / "memory.sqlite", isolation_level=None)

    class FullDisk:
        @property
        def in_transaction(self) -> bool:
            return real.in_transaction

        def execute(self, sql: str, *args):
            if sql.strip().startswith("CREATE"):
                real.execute("ROLLBACK")  # as SQLite does when the disk is full
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        create(FullDisk())
    real.close()


def test_sqlite_meeting_a_full_disk_as_an_io_error_says_the_disk_is_full(tmp_path, monkeypatch):
    # With no room for its -shm file SQLite reports "disk I/O error", not "full": the user must read why.
    from edge_rap.memory.store import DiskFullError, sqlite_error

    error = sqlite3.OperationalError("disk I/O error")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=4096))
    assert isinstance(sqlite_error(error, tmp_path / "memory.sqlite"), DiskFullError)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10**9))
    plain = sqlite_error(error, tmp_path / "memory.sqlite")
    assert not isinstance(plain, DiskFullError) and "disk I/O error" in str(plain)


def test_one_photo_is_one_concepts_and_another_region_of_it_is_another(root, photos):
    # two concepts of the same pixels would tie at 1.00 in every recognition of it
    memory = fake_memory(root)
    photo = scene_file(photos, 1)
    copy = photos / "copy.png"
    shutil.copyfile(photo, copy)
    memory.remember("a", [photo])
    for make in (lambda: memory.remember("b", [copy]), lambda: memory.remember("b", [scene_file(photos, 2), photo])):
        with pytest.raises(EdgeRapError,
                           match=r"copy.png is already a photo of <a>|scene1.png is already a photo of <a>"):
            make()
    # a box past its edges holds it whole: the photo, which was said as if no box had been given ("give the box")
    with pytest.raises(EdgeRapError, match=r"scene1.png: its box \[0, 0, 5000, 5000\] holds the whole photo, which is "
                                           r"already a photo of <a>: .*: give a smaller box of what else it shows"):
        memory.remember("b", [photo], box=Box(0, 0, 5000, 5000))
    memory.remember("b", [photo], box=Box(0, 0, 40, 40))  # another region: two people in one group photo
    memory.remember("c", [scene_file(photos, 3)])
    with pytest.raises(EdgeRapError, match=r"\(box \[0, 0, 40, 40\]\) is already a photo of <b>"):
        memory.add_views("c", [photo], box=Box(0, 0, 40, 40))
    with pytest.raises(EdgeRapError, match="every photo given is already a view of <a>"):
        memory.add_views("a", [copy])  # to its own concept: nothing new, said
    assert [(c.name, c.views) for c in memory.concepts()] == [("a", 1), ("b", 1), ("c", 1)]
    assert len(list((root / "images").glob("*/*"))) == 2  # nothing refused was kept
    memory.close()


# --- a stored photo missing or damaged ------------------------------------------------------------------------


class UpgradedEmbedder(FakeEmbedder):
    """The embedder after an upgrade: another export (fingerprint), so every vector must be made again."""

    space = SpaceInfo(FakeEmbedder.space.name, FakeEmbedder.space.model, "e" * 64, FakeEmbedder.space.dim)


def views_per_photo() -> int:
    return len(augmented_views(np.zeros((64, 64, 3), np.uint8)))


def _stored_photo(memory, name: str, k: int = 0) -> Path:
    return Path(memory.store.views(memory.get(name).id)[k].image_path)


def _household_with_damage(root: Path, photos: Path):
    """bo (one photo, deleted), anya (two photos, one truncated) and cat (intact), as an older export made them."""
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)], "our Shiba Inu")
    memory.remember("anya", [scene_file(photos, 2), scene_file(photos, 3)])
    memory.remember("cat", [scene_file(photos, 4)])
    _stored_photo(memory, "bo").unlink()
    damaged = _stored_photo(memory, "anya", 1)
    damaged.write_bytes(damaged.read_bytes()[:300])
    return memory


def test_a_missing_or_damaged_photo_does_not_stop_the_reindex_an_upgrade_needs(root, photos):
    # reindex stopped at the first photo it could not read, "nothing was changed": after an upgrade of the
    # embedder nothing at all could be recognised, because of one file
    _household_with_damage(root, photos).close()
    memory = Memory(root, UpgradedEmbedder())
    done = memory.reindex()
    assert done.views == 2 and done.unrecognisable == ["bo"]  # anya's readable photo and cat's
    assert sorted((p.concept, p.problem.split(": ")[-1]) for p in done.unreadable) == [
        ("anya", "corrupt or truncated image (image file is truncated)"), ("bo", "no such file")]
    assert all("edge-rap add-views" in line for line in done.lines()) and len(done.lines()) == 3
    assert {c.name: c.description for c in memory.concepts()} == {"anya": "", "bo": "our Shiba Inu", "cat": ""}
    assert top_concept(memory, scene_file(photos, 4)) == "cat" and top_concept(memory, scene_file(photos, 2)) == "anya"
    # the vectors the older export made are gone with the rest: one space never holds two models' vectors
    assert memory.store.concept_vectors(memory.get("bo").id, "fake").size == 0
    assert memory.store.space("fake")[1] == "e" * 64 and len(memory.view()) == 2 * views_per_photo()
    # given its photo again (it was the one deleted) bo is recognised, and the truncated copy is stored anew
    assert memory.add_views("bo", [scene_file(photos, 1)]).views == 1
    assert memory.add_views("anya", [scene_file(photos, 3)]).views == 2
    assert top_concept(memory, scene_file(photos, 1)) == "bo"
    again = memory.reindex()
    assert (again.views, again.unreadable, again.unrecognisable) == (4, [], [])


def test_a_photo_given_again_restores_its_missing_or_damaged_copy(root, photos):
    # add-views said "every photo given is already a view of <bo>; nothing was changed": the photo the household
    # still had could not mend the copy the memory lost
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1), scene_file(photos, 2)])
    lost, damaged = _stored_photo(memory, "bo"), _stored_photo(memory, "bo", 1)
    lost.unlink()
    damaged.write_bytes(bytes(100))
    assert memory.add_views("bo", [scene_file(photos, 1), scene_file(photos, 2)]).views == 2
    assert lost.read_bytes() == scene_file(photos, 1).read_bytes()
    assert damaged.read_bytes() == scene_file(photos, 2).read_bytes()
    assert len(memory.view()) == 2 * views_per_photo()  # the views replaced, not doubled
    with pytest.raises(EdgeRapError, match="already a view"):  # an intact one is still refused
        memory.add_views("bo", [scene_file(photos, 1)])


def test_a_stored_photo_whose_bytes_changed_but_still_decodes_is_not_re_embedded(root, photos):
    # bit rot on an SD card that still decodes (a JPEG with a flipped byte shows a smeared block) was re-embedded
    # without a word at reindex: a worse vector for good
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1, ".jpg"), scene_file(photos, 2, ".jpg")])
    memory.remember("cat", [scene_file(photos, 4, ".jpg")])
    rotten = _stored_photo(memory, "bo")
    data = bytearray(rotten.read_bytes())
    data[len(data) // 2] ^= 0x10
    rotten.write_bytes(bytes(data))
    read_image_file(rotten)  # it still decodes
    memory.close()
    memory = Memory(root, UpgradedEmbedder())
    done = memory.reindex()
    assert done.views == 2 and done.unrecognisable == []  # bo's other photo carries it
    assert [(p.concept, p.photo) for p in done.unreadable] == [("bo", str(rotten))]
    assert "damaged" in done.unreadable[0].problem and "edge-rap add-views bo PHOTO" in done.lines()[0]
    original = next(p for p in (scene_file(photos, k, ".jpg") for k in (1, 2))
                    if hashlib.sha256(p.read_bytes()).hexdigest() == rotten.stem)  # (its name)
    assert memory.add_views("bo", [original]).views == 2  # given again, its copy is stored anew
    again = memory.reindex()
    assert (again.views, again.unreadable) == (3, [])


def test_a_stored_box_that_no_longer_fits_its_photo_does_not_stop_the_reindex(root, photos):
    # a photo replaced by a smaller one (re-encoded, a memory restored from elsewhere) under a --box given for the
    # larger: reindex stopped at it ("box [...] keeps under 4 pixels a side"), and after an upgrade of the embedder
    # nothing at all could be recognised
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(photos, 1)], box=Box(150, 150, 250, 250))
    memory.remember("anya", [scene_file(photos, 2)], box=Box(64, 64, 250, 250))
    memory.remember("cat", [scene_file(photos, 4)])
    save(_stored_photo(memory, "bo"), scene(1, 128, 128))  # the box is wholly outside it now: unusable
    save(_stored_photo(memory, "anya"), scene(2, 128, 128))  # partly: what is inside it is cut out
    for name in ("bo", "anya"):  # (else their changed bytes refuse them before their boxes are looked at)
        agree_with_replaced_photo(memory.store, _stored_photo(memory, name))
    memory.close()
    memory = Memory(root, UpgradedEmbedder())
    done = memory.reindex()
    assert done.views == 2 and done.unrecognisable == ["bo"]
    assert [(p.concept, p.problem.split(": ", 1)[-1]) for p in done.unreadable] == [
        ("bo", "box [150, 150, 250, 250] keeps under 4 pixels a side of the 128x128 image (too small, or outside it)")]
    assert "edge-rap add-views bo PHOTO" in done.lines()[0]
    assert top_concept(memory, scene_file(photos, 4)) == "cat"


def test_a_reindex_by_the_same_embedder_keeps_the_vectors_of_a_photo_it_cannot_read(root, photos):
    memory = _household_with_damage(root, photos)
    done = memory.reindex()
    assert done.views == 2 and done.unrecognisable == [] and len(done.unreadable) == 2
    assert top_concept(memory, scene_file(photos, 1)) == "bo"  # its vectors are this embedder's: still good
    assert len(memory.view()) == 4 * views_per_photo()


def test_a_reindex_that_can_read_none_of_very_many_photos_still_completes(root, photos):
    # an images/ folder lost in a large memory: more views to keep than SQLite takes variables in one statement
    memory = fake_memory(root)
    bo = memory.remember("bo", [scene_file(photos, 1)])
    lost = _more_than_the_variables(memory.store.db)
    with memory.store.transaction() as db:
        db.executemany("INSERT INTO views (concept_id, image_sha256, image_file, created) VALUES (?, ?, ?, 0)",
                       [(bo.id, f"{k:064x}", f"00/{k:064x}.png") for k in range(lost)])
    done = memory.reindex()
    assert (done.views, len(done.unreadable), done.unrecognisable) == (1, lost, [])


def _more_than_the_variables(db: sqlite3.Connection) -> int:
    """More than the variables one statement of `db` takes: 150, its limit lowered to 100 where this Python can
    (3.11's setlimit), else one more than SQLite was built with (32766 by default, Debian's 250000: some seconds)."""
    if hasattr(db, "setlimit"):
        db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)
        return 150
    built = [int(o.split("=")[1]) for (o,) in db.execute("PRAGMA compile_options")
             if o.startswith("MAX_VARIABLE_NUMBER=")]
    return (built[0] if built else 32766) + 1


def test_a_reindex_killed_midway_leaves_a_memory_that_opens_and_reindexes(root, photos, tmp_path):
    _household_with_damage(root, photos).close()
    script = tmp_path / "killed.py"
    script.write_text(f"""
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_memory_robust import UpgradedEmbedder
from edge_rap.memory.index import IndexWriter
from edge_rap.memory.memory import Memory

save = IndexWriter._save
def save_then_die(self, index, stem):
    save(self, index, stem)
    os.kill(os.getpid(), signal.SIGKILL)  # the new index written, its row not yet committed
IndexWriter._save = save_then_die
Memory(Path({str(root)!r}), UpgradedEmbedder()).reindex()
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    memory = Memory(root, UpgradedEmbedder())
    with pytest.raises(EdgeRapError, match="reindex"):  # as before it: the older export's vectors, said so
        memory.view().search(np.zeros(192, np.float32), 1)
    assert [c.name for c in memory.concepts()] == ["anya", "bo", "cat"]
    assert memory.reindex().unrecognisable == ["bo"]
    assert top_concept(memory, scene_file(photos, 4)) == "cat"
    listed = memory.store.space("fake")[4].split()
    assert all((root / "index" / name).is_file() for name in listed)
    assert not list((root / "index").glob("*.tmp"))
