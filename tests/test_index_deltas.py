"""A space's index as a base file plus delta files: a remember writes only its own vectors, readers search
them all, compaction and forget leave one base, and a writer killed after writing a delta changes nothing."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fakes import FakeEmbedder, fake_memory, top_concept
from scenes import scene_file

from edge_rap.memory.index import MAX_DELTAS, IndexView, index_files
from edge_rap.memory.memory import Memory

SPACE = FakeEmbedder.space.name


@pytest.fixture
def photos(tmp_path) -> Path:
    return tmp_path / "photos"


def listed(memory: Memory) -> list[str]:
    return index_files(memory.store.space(SPACE)[4])


def on_disk(memory: Memory) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (memory.root / "index").iterdir()}


def compacted(root: Path, photos: Path, count: int) -> Memory:
    """A memory of `count` concepts whose index is one base file (a forget compacts)."""
    memory = fake_memory(root)
    memory.remember("scratch", [scene_file(photos, 9_999)])
    for i in range(count):
        memory.remember(f"c{i}", [scene_file(photos, i)])
    memory.forget("scratch")
    assert len(listed(memory)) == 1
    return memory


def test_a_remember_writes_a_file_whose_size_does_not_grow_with_the_memory(tmp_path, photos):
    written = {}
    for count in (12, 48):
        memory = compacted(tmp_path / f"m{count}", photos, count)
        before = on_disk(memory)
        memory.remember("new", [scene_file(photos, 500)])
        after = on_disk(memory)
        new = {name: size for name, size in after.items() if before.get(name) != size}
        assert list(new) == listed(memory)[1:], "only the delta file was written"
        written[count] = sum(new.values())
        assert written[count] < before[listed(memory)[0]] / 4
    assert written[48] == written[12]


def test_readers_see_the_vectors_in_deltas(tmp_path, photos):
    writer = compacted(tmp_path / "m", photos, 12)
    reader = fake_memory(writer.root, readonly=True)
    view = IndexView(reader.store, SPACE, FakeEmbedder.space)
    assert len(view) == len(writer.store.vectors(SPACE)[0]) > 0
    for i in range(12, 15):
        writer.remember(f"c{i}", [scene_file(photos, i)])
        writer.add_views("c0", [scene_file(photos, 100 + i)])
    assert len(listed(writer)) > 2  # the new vectors are in delta files
    db_keys, _ = writer.store.vectors(SPACE)
    keys, vectors = view.grouped()
    assert Counter(keys.tolist()) == Counter(db_keys.tolist()) and len(view) == len(db_keys)
    assert list(keys) == sorted(keys) and vectors.shape == (len(db_keys), FakeEmbedder.space.dim)
    assert [top_concept(reader, scene_file(photos, i)) for i in range(15)] == [f"c{i}" for i in range(15)]
    assert top_concept(reader, scene_file(photos, 114)) == "c0"  # c0's view in a delta, its first in the base


def test_deltas_are_compacted_and_results_stay_right(tmp_path, photos):
    memory = compacted(tmp_path / "m", photos, 48)
    lengths = []
    for i in range(48, 48 + MAX_DELTAS + 4):
        memory.remember(f"c{i}", [scene_file(photos, i)])
        lengths.append(len(listed(memory)))
        assert set(listed(memory)) <= set(on_disk(memory))
    assert max(lengths) <= 1 + MAX_DELTAS
    assert 1 in lengths[1:], f"no compaction: {lengths}"
    memory.rename("c3", "renamed")
    names = [top_concept(memory, scene_file(photos, i)) for i in range(48 + MAX_DELTAS + 4)]
    assert names == [("renamed" if i == 3 else f"c{i}") for i in range(48 + MAX_DELTAS + 4)]
    memory.remember("last", [scene_file(photos, 900)])  # the next writer collects the superseded files
    assert set(on_disk(memory)) == set(listed(memory))


def test_forget_of_a_concept_in_a_delta(tmp_path, photos):
    from usearch.index import Index

    memory = compacted(tmp_path / "m", photos, 12)
    memory.remember("gone", [scene_file(photos, 300)])
    memory.remember("kept", [scene_file(photos, 301)])
    assert len(listed(memory)) == 3
    gone = memory.get("gone").id
    memory.forget("gone")
    (name,) = listed(memory)
    assert set(on_disk(memory)) == {name}
    assert gone not in {int(k) for k in Index.restore(str(memory.root / "index" / name)).keys}
    assert top_concept(memory, scene_file(photos, 300)) != "gone"
    assert [top_concept(memory, scene_file(photos, i)) for i in (0, 301)] == ["c0", "kept"]


KILLED_AFTER_THE_DELTA = r"""
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from fakes import fake_memory
from scenes import scene_file
import edge_rap.memory.index as index

def fsync_then_die(path):
    real(path)
    os.kill(os.getpid(), signal.SIGKILL)  # the delta is on disk under its name; the row is not switched

real, index.fsync_dir = index.fsync_dir, fsync_then_die
fake_memory(Path(sys.argv[2])).remember("doomed", [scene_file(Path(sys.argv[3]), 777)])
"""


def test_a_writer_killed_between_its_delta_and_the_commit_leaves_the_previous_state(tmp_path, photos):
    memory = compacted(tmp_path / "m", photos, 12)
    memory.remember("c12", [scene_file(photos, 12)])
    before_row, before_files = memory.store.space(SPACE), on_disk(memory)
    script = tmp_path / "writer.py"
    script.write_text(KILLED_AFTER_THE_DELTA)
    done = subprocess.run([sys.executable, str(script), str(Path(__file__).resolve().parent), str(memory.root),
                           str(photos)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    orphans = set(on_disk(memory)) - set(before_files)
    assert len(orphans) == 1 and on_disk(memory)[orphans.pop()] < before_files[listed(memory)[0]] / 4  # a delta
    reader = fake_memory(memory.root, readonly=True)
    assert reader.store.space(SPACE) == before_row
    assert "doomed" not in [c.name for c in reader.concepts()]
    assert [top_concept(reader, scene_file(photos, i)) for i in range(13)] == [f"c{i}" for i in range(13)]
    memory.remember("after", [scene_file(photos, 778)])  # the next writer collects the orphan
    assert set(on_disk(memory)) == set(listed(memory))
    assert top_concept(memory, scene_file(photos, 778)) == "after"
