"""The dataset `eval` reads: a folder per concept, its photos, and what it leaves out, each said."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from concept_folders import CONCEPTS, refused_stat
from edge_rap.errors import EdgeRapError
from edge_rap.eval.dataset import loose_photos, read_dataset
from edge_rap.wording import counted
from photos import save_photo


def test_layout_first_sorted_image_is_the_reference(dataset):
    concepts = read_dataset(dataset)
    assert [c.name for c in concepts] == sorted(CONCEPTS)
    assert all([r.name for r in c.references] == ["a.png"] and [q.name for q in c.queries] == ["b0.jpg", "b1.jpg"]
               for c in concepts)
    assert all([r.name for r in c.references] == ["a.png", "b0.jpg"] and [q.name for q in c.queries] == ["b1.jpg"]
               for c in read_dataset(dataset, references=2))


def test_phone_and_web_photo_types_are_part_of_a_concept_folder(dataset):
    for suffix in (".HEIC", ".heif", ".hif", ".avif", ".webp", ".jfif", ".JPE"):  # .jfif: Windows' saved JPEGs
        (dataset / "coffee" / f"c{suffix}").write_bytes(b"")
    (dataset / "coffee" / "notes.txt").write_text("not a photo")
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert [q.name for q in coffee.queries] == ["b0.jpg", "b1.jpg", "c.HEIC", "c.JPE", "c.avif", "c.heif", "c.hif",
                                                "c.jfif", "c.webp"]


def test_a_photo_without_a_photos_suffix_is_taken_by_its_content(dataset):
    # A browser's download (`photo.jpg_large`), a file with no suffix: pictures a person counts, not to be dropped
    # unsaid. Sidecars and notes stay out, and so does a TIFF header (camera RAW files have one).
    folder = dataset / "coffee"
    (folder / "c.jpg_large").write_bytes((folder / "b0.jpg").read_bytes())
    (folder / "IMG_0001").write_bytes((folder / "a.png").read_bytes())
    (folder / "IMG_0001.AAE").write_text('<?xml version="1.0"?><plist/>')
    (folder / "IMG_0002.DNG").write_bytes(b"II*\x00" + bytes(60))
    (folder / "Thumbs.db").write_bytes(bytes(range(256)))
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert [r.name for r in coffee.references] == ["IMG_0001"]
    assert [q.name for q in coffee.queries] == ["a.png", "b0.jpg", "b1.jpg", "c.jpg_large"]


def test_a_folder_of_photos_inside_a_concepts_folder_is_said_not_read(dataset):
    # A phone's export (`coffee/edited/`): its photos were left out of the concept unsaid.
    save_photo(dataset / "coffee" / "edited", "coffee", filename="a.jpg")
    (dataset / "coffee" / "notes").mkdir()  # (no photo in it: nothing to say)
    (dataset / "coffee" / "loop").symlink_to(".")  # (coffee's own photos, read: not said as not read)
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert [q.name for q in coffee.queries] == ["b0.jpg", "b1.jpg"]
    assert coffee.unread == [f"{dataset / 'coffee' / 'edited'}: a folder of 1 photo inside a concept's folder, not "
                             "read (move them up into it)"]


def test_photos_two_or_more_folders_down_in_a_concepts_folder_are_said_with_their_count(dataset):
    # `coffee/trips/2023/`, `coffee/trips/2024/summer/`: one level down was said, deeper ones left out unsaid
    for folder, name in (("2023", "a.jpg"), ("2023", "b.jpg"), ("2024/summer", "c.png")):
        save_photo(dataset / "coffee" / "trips" / folder, "coffee", filename=name)
    save_photo(dataset / "coffee" / "trips" / ".cache", "coffee", filename="d.jpg")  # hidden: no photo of its
    (dataset / "coffee" / "trips" / "back").symlink_to("../..")  # (a link up: not followed, nothing counted twice)
    (dataset / "coffee" / "empty" / "deeper").mkdir(parents=True)  # (none: nothing to say)
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert [q.name for q in coffee.queries] == ["b0.jpg", "b1.jpg"]
    assert coffee.unread == [f"{dataset / 'coffee' / 'trips'}: a folder of 3 photos inside a concept's folder, not "
                             "read (move them up into it)"]


def test_a_link_in_a_concepts_folder_to_a_folder_above_it_is_not_walked(dataset):
    # `coffee/up -> ..` was walked: the other concepts' photos, read, said as not read; `root -> /` walked the disk
    (dataset / "coffee" / "up").symlink_to("..")
    (dataset / "coffee" / "above").symlink_to("../..")
    save_photo(dataset / "coffee" / "edited", "coffee", filename="a.jpg")
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert coffee.unread == [f"{dataset / 'coffee' / 'edited'}: a folder of 1 photo inside a concept's folder, not "
                             "read (move them up into it)"]


def test_a_folder_of_photos_a_thousand_folders_down_is_counted_not_a_traceback(dataset, monkeypatch):
    # os.walk (Python 3.11's) recursed a call a folder: a RecursionError, a traceback that ended the evaluation
    import os
    import sys
    from pathlib import Path

    deep = dataset / "coffee" / "deep"
    deep.mkdir()
    monkeypatch.chdir(deep)  # (made a folder at a time: os.makedirs recurses too)
    try:
        for _ in range(sys.getrecursionlimit() + 50):
            os.mkdir("a")
            os.chdir("a")
        save_photo(Path.cwd(), "coffee", filename="a.jpg")
        coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
        assert coffee.unread == [f"{deep}: a folder of 1 photo inside a concept's folder, not read (move them up "
                                 "into it)"]
    finally:  # (removed a folder at a time: pytest's removal of old temporary folders recurses as os.walk did)
        Path("a.jpg").unlink(missing_ok=True)
        while Path.cwd() != deep:
            os.chdir("..")
            os.rmdir("a")


def _unlisted(monkeypatch, *names: str) -> None:
    """os.scandir of a folder named one of `names` refused, as of one of mode 000 or 111 another account owns
    (root, which the tests run as, is never refused: the refusal is staged)."""
    import os

    scandir = os.scandir

    def refused(path="."):
        if os.path.basename(path) in names:
            raise PermissionError(13, "Permission denied")
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refused)


def test_a_folder_in_a_concepts_folder_that_cannot_be_listed_is_named_not_passed_over_unsaid(dataset, monkeypatch):
    # `coffee/edited/` (mode 000), `coffee/trips/2023/` (111): their photos, if any, were left out unsaid
    save_photo(dataset / "coffee" / "edited", "coffee", filename="a.jpg")
    save_photo(dataset / "coffee" / "trips" / "2023", "coffee", filename="a.jpg")
    save_photo(dataset / "coffee" / "trips" / "2024", "coffee", filename="a.jpg")
    _unlisted(monkeypatch, "edited", "2023")
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert [q.name for q in coffee.queries] == ["b0.jpg", "b1.jpg"]
    assert coffee.unread == [
        f"{dataset / 'coffee' / 'edited'}: a folder inside a concept's folder that cannot be listed (Permission "
        "denied): any photos in it not read",
        f"{dataset / 'coffee' / 'trips'}: a folder of 1 photo inside a concept's folder, not read (move them up into "
        "it)",
        f"{dataset / 'coffee' / 'trips' / '2023'}: a folder inside a concept's folder that cannot be listed "
        "(Permission denied): any photos in it not read"]


def test_a_link_to_a_concept_folder_whose_photos_are_not_read_is_not_said_as_one_whose_are(dataset, monkeypatch):
    # `coffee/none -> ../empty` (no photo), `coffee/locked -> ../private` (cannot be listed): each was said as a link
    # to another concept "its photos are read as that concept's", beside that concept's "no photo" or "cannot list"
    from pathlib import Path

    (dataset / "empty").mkdir()
    save_photo(dataset / "private", "moon")
    (dataset / "coffee" / "none").symlink_to("../empty")
    (dataset / "coffee" / "locked").symlink_to("../private")
    listed = Path.iterdir

    def iterdir(path):  # (root is never refused: staged)
        if path.name == "private":
            raise PermissionError(13, "Permission denied")
        return listed(path)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    _unlisted(monkeypatch, "locked")
    unread = {c.name: c.unread for c in read_dataset(dataset)}
    assert unread["coffee"] == [f"{dataset / 'coffee' / 'locked'}: a folder inside a concept's folder that cannot be "
                                "listed (Permission denied): any photos in it not read"]
    assert unread["private"] == [f"{dataset / 'private'}: cannot list (Permission denied)"] and unread["empty"] == []


def _linked_inside(link, concept: str) -> str:
    return (f"{link}: a link to a folder inside the folder of another concept, '{concept}' (its photos are counted as "
            "that concept's, not as this one's)")


@pytest.mark.parametrize("inside", ["edited", "trips/2023"])
@pytest.mark.parametrize("absolute", [False, True])
def test_a_link_to_a_folder_inside_another_concepts_folder_is_said_as_one_its_photos_counted_once(dataset, inside,
                                                                                                 absolute):
    # `coffee/edits -> ../rocket/edited`: rocket's photos there were counted as coffee's too, not only as rocket's
    save_photo(dataset / "rocket" / inside, "rocket", filename="a.jpg")
    (dataset / "coffee" / "edits").symlink_to(dataset / "rocket" / inside if absolute else f"../rocket/{inside}")
    (dataset / "coffee" / "whole").symlink_to(dataset / "rocket" if absolute else "../rocket")  # (its folder itself)
    (dataset / "nested" / "photos").mkdir(parents=True)  # (a concept of no photo: its inner folders counted too)
    save_photo(dataset / "nested" / "photos", "moon")
    (dataset / "astronaut" / "photos").symlink_to(dataset / "nested" / "photos" if absolute else "../nested/photos")
    unread = {c.name: c.unread for c in read_dataset(dataset)}
    assert unread["coffee"] == [
        _linked_inside(dataset / "coffee" / "edits", "rocket"),
        f"{dataset / 'coffee' / 'whole'}: a link to the folder of another concept, 'rocket' (its photos are read as "
        "that concept's, not as this one's)"]
    assert unread["rocket"] == [_photos(dataset / "rocket" / inside.split("/")[0])]
    assert unread["astronaut"] == [_linked_inside(dataset / "astronaut" / "photos", "nested")]
    assert unread["nested"] == [_photos(dataset / "nested" / "photos")]


def test_links_into_other_concepts_folders_are_placed_without_comparing_each_with_every_concept(tmp_path,
                                                                                                 monkeypatch):
    # each link was compared with every concept's folder (Path.is_relative_to): 2000 concepts, each with a link into
    # another's, were read in 50 s, not 2; their folders above it are looked up instead
    concepts = 60
    for k in range(concepts):
        save_photo(tmp_path / f"c{k:02d}", "coffee", filename="a.jpg")
        save_photo(tmp_path / f"c{k:02d}" / "inner", "coffee", filename="b.jpg")
        (tmp_path / f"c{k:02d}" / "link").symlink_to(f"../c{(k + 1) % concepts:02d}/inner")
    compared, is_relative_to = [], Path.is_relative_to

    def counted(path, *others):
        compared.append(path)
        return is_relative_to(path, *others)

    monkeypatch.setattr(Path, "is_relative_to", counted)
    read = read_dataset(tmp_path)
    assert read[0].unread[1] == (f"{tmp_path / 'c00' / 'link'}: a link to a folder inside the folder of another "
                                 "concept, 'c01' (its photos are counted as that concept's, not as this one's)")
    assert len(compared) <= 4 * concepts


def test_a_link_to_a_folder_inside_its_own_concepts_folder_is_not_counted_twice(dataset):
    # `coffee/alias -> edited`: coffee's photos in edited/ were counted twice; one in a hidden folder, which the count
    # passes over, is counted where the link is
    save_photo(dataset / "coffee" / "edited", "coffee", filename="a.jpg")
    (dataset / "coffee" / "alias").symlink_to("edited")
    save_photo(dataset / "rocket" / ".cache", "rocket", filename="a.jpg")
    (dataset / "coffee" / "cached").symlink_to("../rocket/.cache")
    unread = {c.name: c.unread for c in read_dataset(dataset)}
    assert unread["coffee"] == [_photos(dataset / "coffee" / "cached"), _photos(dataset / "coffee" / "edited")]
    assert unread["rocket"] == []


def test_the_count_of_the_folders_in_a_concepts_folder_stops_at_one_limit_for_them_all_said_once(dataset, tmp_path,
                                                                                               monkeypatch):
    # `coffee/lib -> /usr/lib`: 73 000 entries walked, 19 s before the evaluation began; and each of several links in
    # one concept's folder had a limit of its own. The folders after the one where the count ended were passed over
    # unsaid, and one begun with none of the limit left said "no photo among the entries looked at" of its photos.
    import edge_rap.eval.dataset as walk

    monkeypatch.setattr(walk, "WALK_LIMIT", 6)
    tree, other, empty = tmp_path / "tree", tmp_path / "other", tmp_path / "empty"
    for k in range(8):
        save_photo(tree, "coffee", filename=f"{k}.jpg")
    save_photo(other, "coffee")
    (dataset / "coffee" / "lib").symlink_to(tree)
    (dataset / "coffee" / "lib64").symlink_to(other)  # (its concept's count ended before it: not walked)
    empty.mkdir()
    for k in range(7):
        (empty / f"{k}.txt").write_text("no photo")
    (dataset / "rocket" / "notes").symlink_to(empty)
    for folder, photos in (("edited", 2), ("more", 3), ("most", 2), ("zoo", 1)):  # (the limit ends in most/)
        for k in range(photos):
            save_photo(dataset / "astronaut" / folder, "astronaut", filename=f"{k}.jpg")
    for folder, photos in (("a", 3), ("b", 3), ("c", 1)):  # (the limit ends with b/)
        for k in range(photos):
            save_photo(dataset / "chelsea" / folder, "chelsea", filename=f"{k}.jpg")
    unread = {c.name: c.unread for c in read_dataset(dataset)}
    bound = "the folders in a concept's folder are counted to 6 entries in all"
    limit = f"looked through no further: {bound}"
    assert unread["coffee"] == [f"{dataset / 'coffee' / 'lib'} (a link to {tree}): a folder of 6 photos or more "
                                f"({limit}) inside a concept's folder, not read (move them up into it)",
                                f"{dataset / 'coffee'}: 1 more folder in it not looked through ({bound})"]
    assert unread["rocket"] == [f"{dataset / 'rocket' / 'notes'} (a link to {empty}): a folder inside a concept's "
                                f"folder, no photo among the entries looked at ({limit})"]
    assert unread["astronaut"] == [
        f"{dataset / 'astronaut' / 'edited'}: a folder of 2 photos inside a concept's folder, not read (move them up "
        "into it)",
        f"{dataset / 'astronaut' / 'more'}: a folder of 3 photos inside a concept's folder, not read (move them up "
        "into it)",
        f"{dataset / 'astronaut' / 'most'}: a folder of 1 photo or more ({limit}) inside a concept's folder, not read "
        "(move them up into it)",
        f"{dataset / 'astronaut'}: 1 more folder in it not looked through ({bound})"]
    assert unread["chelsea"] == [_photos(dataset / "chelsea" / "a", 3), _photos(dataset / "chelsea" / "b", 3),
                                 f"{dataset / 'chelsea'}: 1 more folder in it not looked through ({bound})"]


def test_a_folder_reached_by_several_links_is_counted_once(dataset, tmp_path):
    # `coffee/a -> b -> ../rocket/.cache` (a hidden folder, which rocket's count passes over): its photos were
    # counted under both links; so were those of a folder outside the dataset under each concept linking to it
    save_photo(dataset / "rocket" / ".cache", "rocket", filename="a.jpg")
    (dataset / "coffee" / "a").symlink_to("b")
    (dataset / "coffee" / "b").symlink_to("../rocket/.cache")
    for folder in ("trips", "trips/2023"):
        save_photo(tmp_path / folder, "coffee", filename="a.jpg")
    (dataset / "coffee" / "trips").symlink_to(tmp_path / "trips")
    (dataset / "rocket" / "summer").symlink_to(tmp_path / "trips" / "2023")  # (one inside it)
    (dataset / "rocket" / "zz").symlink_to(tmp_path / "trips")
    unread = {c.name: c.unread for c in read_dataset(dataset)}
    coffee = dataset / "coffee"
    assert unread["coffee"] == [_photos(coffee / "a"), _counted_as(coffee / "b", coffee / "a"),
                                _photos(coffee / "trips", 2)]
    assert unread["rocket"] == [_counted_as(dataset / "rocket" / "summer", dataset / "coffee" / "trips"),
                                _counted_as(dataset / "rocket" / "zz", dataset / "coffee" / "trips")]


def test_a_link_into_a_folder_whose_count_was_cut_short_is_counted_not_said_as_counted(dataset, tmp_path,
                                                                                     monkeypatch):
    # `coffee/all -> tree`, its count cut in tree's own listing (tree/pics never looked at): `rocket/pics ->
    # tree/pics` said "a link to a folder counted already, as coffee/all", and its photo was said nowhere
    import edge_rap.eval.dataset as walk

    monkeypatch.setattr(walk, "WALK_LIMIT", 6)
    tree = tmp_path / "tree"
    save_photo(tree / "pics", "rocket", filename="a.jpg")
    for k in range(7):
        (tree / f"{k}.txt").write_text("no photo")
    (dataset / "coffee" / "all").symlink_to(tree)
    (dataset / "rocket" / "pics").symlink_to(tree / "pics")
    (dataset / "rocket" / "zz").symlink_to(tree)  # (walked again, to rocket's own bound)
    unread = {c.name: c.unread for c in read_dataset(dataset)}
    cut = f"(a link to {tree}): a folder inside a concept's folder, no photo among the entries looked at (looked " \
          "through no further: the folders in a concept's folder are counted to 6 entries in all)"
    assert unread["coffee"] == [f"{dataset / 'coffee' / 'all'} {cut}"]
    assert unread["rocket"] == [_photos(dataset / "rocket" / "pics"), f"{dataset / 'rocket' / 'zz'} {cut}"]


def _photos(folder, photos: int = 1) -> str:
    return (f"{folder}: a folder of {counted(photos, 'photo')} inside a concept's folder, not read (move them up into "
            "it)")


def _counted_as(link, first) -> str:
    return f"{link}: a link to a folder counted already, as {first} (its photos are counted once)"


def _read_unblocked(dataset: Path, pipes: list[Path]) -> list:
    """read_dataset, in a thread of its own: a walk that opened a pipe would wait for a writer for ever, and fails
    the test instead; each pipe is then opened for writing and closed, so that the thread ends."""
    done: list = []

    def read() -> None:
        try:
            done.append(read_dataset(dataset))
        except BaseException as e:  # (raised here, in the test's thread)
            done.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(120)
    if reader.is_alive():
        for pipe in pipes:
            with contextlib.suppress(OSError):  # (ENXIO: no reader waits on this one)
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the walk opened a pipe and waited for its writer")
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]


def test_a_pipe_in_a_dataset_is_never_opened_nor_a_photo_and_is_said(dataset):
    # A pipe named as a photo, sorted first, was a concept's reference (the concept left out); one named otherwise,
    # or in a folder inside a concept's, or a link to one, was passed over unsaid
    coffee = dataset / "coffee"
    pipes = [coffee / "0.jpg", coffee / "pipe", coffee / "edited" / "p", dataset / "pipe"]
    save_photo(coffee / "edited", "coffee", filename="a.jpg")
    for pipe in pipes:
        os.mkfifo(pipe)
    (coffee / "edited" / "lp").symlink_to("../0.jpg")
    (dataset / "rocket" / "pipe").symlink_to("../coffee/pipe")
    concepts = {c.name: c for c in _read_unblocked(dataset, pipes)}
    assert [p.name for p in concepts["coffee"].references] == ["a.png"]
    assert [p.name for p in concepts["coffee"].queries] == ["b0.jpg", "b1.jpg"]
    assert concepts["coffee"].unread == [
        f"{coffee / '0.jpg'}: a pipe, not a photo (not opened)", f"{coffee / 'pipe'}: a pipe, not a photo (not opened)",
        f"{coffee / 'edited'}: a folder of 1 photo inside a concept's folder, not read (move them up into it)",
        f"{coffee / 'edited' / 'lp'}: a pipe, not a photo (not opened)",
        f"{coffee / 'edited' / 'p'}: a pipe, not a photo (not opened)"]
    assert concepts["rocket"].unread == [f"{dataset / 'rocket' / 'pipe'}: a pipe, not a photo (not opened)"]
    assert loose_photos(dataset) == [f"{dataset / 'pipe'}: a pipe, not a photo (not opened)"]


def test_the_pipes_and_devices_in_a_folder_inside_a_concepts_are_named_to_a_few_the_others_counted(dataset):
    # a link to /proc named each process's fd/ (its terminal, its pipes): some 200 lines in skipped_images
    edited = dataset / "coffee" / "edited"
    pipes = [edited / f"p{k}" for k in range(5)] + [edited / "deeper" / "q"]
    (edited / "deeper").mkdir(parents=True)
    for pipe in pipes:
        os.mkfifo(pipe)
    unread = {c.name: c.unread for c in _read_unblocked(dataset, pipes)}["coffee"]
    assert unread == [f"{edited / 'deeper' / 'q'}: a pipe, not a photo (not opened)",
                      f"{edited / 'p0'}: a pipe, not a photo (not opened)",
                      f"{edited / 'p1'}: a pipe, not a photo (not opened)",
                      f"{edited}: 3 more pipes, sockets or devices in it, not photos (not opened)"]


def test_an_empty_file_is_not_opened_to_see_whether_it_is_a_photo(dataset, monkeypatch):
    # /proc's files say they are empty, and reading /proc/kmsg waits for the kernel's next message: a link to /proc in
    # a concept's folder had it opened, and the evaluation never began
    import builtins

    for folder in (dataset / "coffee", dataset / "coffee" / "proc"):
        folder.mkdir(exist_ok=True)
        (folder / "kmsg").touch()
    opened, real_open = [], builtins.open

    def spied(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spied)
    concepts = read_dataset(dataset)
    monkeypatch.undo()
    assert [f for f in opened if f.endswith("kmsg")] == []
    assert next(c for c in concepts if c.name == "coffee").unread == []


def test_a_kernels_file_is_not_opened_to_see_whether_it_is_a_photo(dataset, monkeypatch):
    # sysfs says 4096 bytes of each of its files, none on a disk, and reading /sys/power/wakeup_count waits while a
    # wakeup is handled: a link to /sys in a concept's folder had its files opened. Staged: a file of no block of its
    # own (sparse) on a filesystem said to have none; one on a disk (a photo's header could be there) is opened.
    import builtins
    import types

    for folder in (dataset / "coffee", dataset / "coffee" / "sys"):
        folder.mkdir(exist_ok=True)
        for name in ("wakeup_count", "sparse"):
            with open(folder / name, "wb") as f:
                f.truncate(4096)
    if os.stat(dataset / "coffee" / "sparse").st_blocks:
        pytest.skip("this filesystem keeps no file sparse")
    opened, real_open, statvfs = [], builtins.open, os.statvfs

    def spied(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(f_blocks=0)
                        if os.path.basename(path) == "wakeup_count" else statvfs(path))
    monkeypatch.setattr(builtins, "open", spied)
    concepts = read_dataset(dataset)
    monkeypatch.undo()
    coffee = dataset / "coffee"
    assert sorted({f for f in opened if f.endswith(("wakeup_count", "sparse"))}) == [str(coffee / "sparse"),
                                                                                  str(coffee / "sys" / "sparse")]
    assert next(c for c in concepts if c.name == "coffee").unread == []


def test_each_entry_of_a_concepts_folder_is_looked_at_once_and_the_folder_listed_once(dataset, monkeypatch):
    # each concept's folder was listed 4 times and each photo in it looked at as often (its kind, a pipe's, a pipe's
    # again, a folder's): 2000 concepts of 5 photos were walked in 2.9 times the time
    from collections import Counter

    save_photo(dataset / "coffee" / "edited", "coffee")
    (dataset / "coffee" / "IMG_0001").write_bytes((dataset / "coffee" / "a.png").read_bytes())  # (sniffed)
    looked, listed, stat, iterdir = Counter(), Counter(), Path.stat, Path.iterdir

    def looked_at(path, *args, **kwargs):
        looked[path] += 1
        return stat(path, *args, **kwargs)

    def listing(path):
        listed[path] += 1
        return iterdir(path)

    monkeypatch.setattr(Path, "stat", looked_at)
    monkeypatch.setattr(Path, "iterdir", listing)
    read_dataset(dataset)
    entries = [p for name in CONCEPTS for p in iterdir(dataset / name)]
    assert len(entries) == 3 * len(CONCEPTS) + 2 and {looked[p] for p in entries} == {1}
    assert {listed[dataset / name] for name in CONCEPTS} == {1}


def test_a_file_removed_as_it_is_looked_at_is_no_photo_not_an_error(tmp_path, monkeypatch):
    # is_file, then a second look for its size: a file removed between them raised FileNotFoundError (a folder
    # source said its whole folder could not be listed), where one removed before either was no photo
    from edge_rap.perceive.images import is_photo_file

    frame, real_stat = tmp_path / "frame", Path.stat
    save_photo(tmp_path, "coffee", filename="frame.png")
    (tmp_path / "frame.png").rename(frame)

    def removed_once_looked_at(path, *args, **kwargs):
        status = real_stat(path, *args, **kwargs)
        if path == frame and os.path.exists(frame):
            os.unlink(frame)
        return status

    monkeypatch.setattr(Path, "stat", removed_once_looked_at)
    assert not is_photo_file(frame)
    (tmp_path / "loop").symlink_to("loop")  # as Path.is_file: a loop of links, a dangling one, are no photos
    (tmp_path / "dangling").symlink_to("nowhere")
    assert not is_photo_file(tmp_path / "loop") and not is_photo_file(tmp_path / "dangling")


def test_a_dataset_folder_listed_but_not_searched_is_one_line(dataset, monkeypatch):
    refused_stat(monkeypatch, "database.json")  # (looked for first: a RAP database is refused)
    with pytest.raises(EdgeRapError, match=r"database.json: cannot reach it \(Permission denied"):
        read_dataset(dataset)


def test_a_dataset_folder_that_cannot_be_listed_is_said_so_not_as_its_database_json(dataset, monkeypatch):
    # mode 000 as another account: its database.json was said unreachable, a file the user never named
    from pathlib import Path

    refused_stat(monkeypatch, "database.json")
    iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda path: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if path == dataset else iterdir(path))
    with pytest.raises(EdgeRapError, match=rf"^{re.escape(str(dataset))}: cannot list \(Permission denied\)$"):
        read_dataset(dataset)


def test_a_videos_thumbnail_is_no_photo_and_no_concepts_reference(dataset):
    # A camera's folder copied whole: beside MVI_0001.MOV its MVI_0001.THM, a JPEG by its header (160x120, the
    # video's first frame). Taken by its header, it sorted first and became the concept's reference.
    folder = dataset / "coffee"
    (folder / "MVI_0001.THM").write_bytes((folder / "b0.jpg").read_bytes())
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert [r.name for r in coffee.references] == ["a.png"]
    assert [q.name for q in coffee.queries] == ["b0.jpg", "b1.jpg"]


def test_a_huge_photo_without_a_photos_suffix_is_taken_and_listing_it_warns_nothing(dataset, recwarn):
    # Pillow refuses to open a header of over 179 megapixels (a phone's 200-megapixel photo): the sniff took that for
    # no picture, dropped unsaid, where reading it says the limit; one over 89 wrote Pillow's bomb warning as the
    # folder was listed.
    from PIL import Image

    folder = dataset / "coffee"
    Image.new("1", (16400, 12300), 1).save(folder / "d_200mp", format="PNG")
    Image.new("1", (12000, 9000), 1).save(folder / "d_108mp", format="PNG")
    coffee = next(c for c in read_dataset(dataset) if c.name == "coffee")
    assert [q.name for q in coffee.queries] == ["b0.jpg", "b1.jpg", "d_108mp", "d_200mp"]
    assert [str(w.message) for w in recwarn] == []


def test_a_dataset_given_one_folder_too_high_beside_one_folder_of_photos_is_refused(dataset, tmp_path):
    # `--dataset ../data` holding one dataset and a folder of group photos: a tie, not more folders of concept
    # folders than of photos, so the group photos were evaluated as the only concept (exit 0), the dataset left out.
    data = tmp_path / "data"
    shutil.copytree(dataset, data / "objects")
    save_photo(data / "group_photos", "astronaut", filename="crew.jpg")
    with pytest.raises(EdgeRapError, match=r"^\S+: one level too high\? 1 of its 2 folders holds folders of photos, "
                       r"not photos \('objects' holds a folder per concept: give it as --dataset\)$"):
        read_dataset(data)


@pytest.mark.parametrize("database", [{"labels": ["not", "RAP's"]}, {"concept_dict": {
    f"<{name}>": {"name": name, "image": [f"{name}/a.png"], "info": "", "category": ""} for name in CONCEPTS}},
    {"concept_dict": {f"<{name.replace('_', ' ').title()}>": {"image": [f"{name}/a.png"]} for name in CONCEPTS}}])
def test_a_folder_per_concept_beside_a_database_json_is_evaluated(dataset, database):
    # Refused by the file's name alone as a RAP database, pointed to import-rap (which said "not a RAP database"
    # of the first); the second is import-rap's file of the same folders: both layouts, one concept per folder;
    # the third names them in another case and spacing (<Grace Hopper> of grace_hopper/): refused as RAP's layout.
    (dataset / "database.json").write_text(json.dumps(database))
    assert sorted(c.name for c in read_dataset(dataset)) == sorted(CONCEPTS)


def test_concepts_whose_photos_are_each_in_a_folder_of_their_own_are_left_out_not_taken_for_datasets(dataset):
    # `dog/images/*.jpg` for most concepts: refused as "one level too high", it told to give 'dog' as --dataset.
    for name in CONCEPTS[:3]:
        for photo_file in list((dataset / name).iterdir()):
            (dataset / name / "images").mkdir(exist_ok=True)
            photo_file.rename(dataset / name / "images" / photo_file.name)
    concepts = read_dataset(dataset)
    assert [c.name for c in concepts if not c.references] == sorted(CONCEPTS[:3])
    assert len(concepts) == len(CONCEPTS)


def test_the_folders_a_mac_zip_or_a_nas_adds_are_no_concepts(dataset):
    # unzip of a Mac's archive leaves __MACOSX/ with a `._` sidecar of each photo; a Synology share has @eaDir/.
    for junk in ("__MACOSX", "@eaDir", "lost+found"):
        save_photo(dataset / junk / "coffee", "moon", filename="._a.png")
        save_photo(dataset / junk, "moon", filename="SYNOPHOTO_THUMB_M.jpg")
    assert [c.name for c in read_dataset(dataset)] == sorted(CONCEPTS)


def test_hidden_files_and_folders_are_not_photos_of_a_concept(dataset):
    # macOS leaves `._name` sidecars on other disks: sorted first, one would become the reference.
    (dataset / "coffee" / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    save_photo(dataset / ".thumbnails", "moon")
    save_photo(dataset / "rocket" / ".cache", "moon")
    concepts = read_dataset(dataset)
    assert [c.name for c in concepts] == sorted(CONCEPTS)
    coffee = next(c for c in concepts if c.name == "coffee")
    assert [r.name for r in coffee.references] == ["a.png"] and [q.name for q in coffee.queries] == ["b0.jpg", "b1.jpg"]
