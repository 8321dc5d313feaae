"""RAP's database.json: import reports the missing and the unusable by name; export round-trips."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from scenes import scene_file

from edge_rap.app import open_memory, open_retriever
from edge_rap.errors import EdgeRapError
from edge_rap.perceive.images import read_image_file
from edge_rap.memory.rapdb import EXPORTED_PHOTO, export_rap, import_rap, read_rap_database
from edge_rap.types import Box


def make_rap_database(folder: Path) -> Path:
    """A RAP database with 4 entries: 2 good, 1 whose image is missing, 1 whose image is corrupt."""
    images = folder / "database"
    scene_file(images, 1)
    scene_file(images, 2)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50)
    db = {
        "concept_dict": {
            "<bo>": {"name": "bo", "image": ["./database/scene1.png"], "info": "our Shiba Inu", "category": "dog"},
            "<mug>": {"name": "mug", "image": "database/scene2.png", "info": "the blue mug", "category": "cup"},
            "<ghost>": {"name": "ghost", "image": ["./database/gone.png"], "info": "not there", "category": "x"},
            "<broken>": {"name": "broken", "image": ["./database/broken.png"], "info": "corrupt", "category": "y"},
        },
        "path_to_concept": {"./database/scene1.png": "<bo>"},
    }
    path = folder / "database.json"
    path.write_text(json.dumps(db))
    return path


def signature(memory) -> dict:
    return {c.name: (c.description, c.category, sorted(v.image_sha256 for v in memory.store.views(c.id)))
            for c in memory.concepts()}


@pytest.fixture
def memory(settings, embedder):
    mem = open_memory(settings, embedder)
    yield mem
    mem.close()


def test_import_reports_missing_and_failed_by_name(memory, settings, tmp_path):
    path = make_rap_database(tmp_path / "rap")
    report = import_rap(memory, path)
    assert sorted(report.imported) == ["bo", "mug"]
    assert report.missing == ["ghost"]
    assert list(report.failed) == ["broken"]
    assert "broken.png" in report.failed["broken"] and "\n" not in report.failed["broken"]
    assert report.skipped == []
    assert {c.name: (c.description, c.category, c.views) for c in memory.concepts()} == {
        "bo": ("our Shiba Inu", "dog", 1),
        "mug": ("the blue mug", "cup", 1),
    }
    retriever = open_retriever(memory, settings)
    for name, seed in (("bo", 1), ("mug", 2)):
        hits = retriever.recognize(read_image_file(tmp_path / "rap" / "database" / f"scene{seed}.png").image).hits
        assert hits[0].concept.name == name
    assert json.loads(json.dumps(report.to_json()))["missing"] == ["ghost"]

    # importing again skips what is already there and changes nothing
    again = import_rap(memory, path)
    assert sorted(again.skipped) == ["bo", "mug"] and again.imported == []
    assert sorted(c.name for c in memory.concepts()) == ["bo", "mug"]
    raw = json.loads(path.read_text())  # the same database with a name in another case: the same concept
    raw["concept_dict"]["<BO>"] = raw["concept_dict"].pop("<bo>")
    path.write_text(json.dumps(raw))
    third = import_rap(memory, path)
    assert sorted(third.skipped) == ["BO", "mug"] and "BO" not in third.failed


def test_a_folder_given_for_an_image_is_said_to_be_a_folder(memory, tmp_path):
    # an entry whose "image" was the photos' folder was reported as "missing image": the user looked for a file
    # that was there
    folder = tmp_path / "rap" / "database"
    scene_file(folder, 1)
    path = tmp_path / "rap" / "database.json"
    path.write_text(json.dumps({"concept_dict": {"<bo>": {"name": "bo", "image": ["./database/scene1.png",
                                                                                  "./database"]}}}))
    report = import_rap(memory, path)
    assert report.missing == [] and report.imported == []
    assert report.failed == {"bo": f"{folder}: is a folder, not an image"}
    assert memory.concepts() == []


def test_an_entry_with_some_photos_missing_comes_in_with_the_others_and_names_them(memory, settings, tmp_path,
                                                                                   capsys):
    # it came in with one photo of two, "imported 1 concept(s)", exit 0: the missing photo was never named
    from edge_rap import cli

    folder = tmp_path / "rap"
    scene_file(folder / "database", 1)
    path = folder / "database.json"
    path.write_text(json.dumps({"concept_dict": {"<bo>": {
        "name": "bo", "image": "./database/scene1.png", "extra_images": ["./database/gone.png"]}}}))
    rc = cli.main(["import-rap", str(path), "--json", "--memory", str(settings.memory)])
    out, err = capsys.readouterr()
    assert rc == 1 and json.loads(out)["imported"] == ["bo"]
    assert json.loads(out)["missing_photos"] == {"bo": [str(folder / "database" / "gone.png")]}
    assert memory.get("bo").views == 1
    scene_file(folder / "database", 2)  # (a photo of its own: one photo is one concept's)
    path.write_text(json.dumps({"concept_dict": {"<mug>": {"image": ["./database/scene2.png", "./database/x.png"]}}}))
    rc = cli.main(["import-rap", str(path), "--memory", str(settings.memory)])
    assert rc == 1 and capsys.readouterr().err == f"imported <mug> without its missing photo: {folder}/database/x.png\n"


def test_a_photo_name_longer_than_the_file_system_takes_is_a_missing_photo(memory, settings, tmp_path, capsys):
    # the import stopped there, "File name too long", exit 2, the entries after it never tried nor the report said
    from edge_rap import cli

    folder = tmp_path / "rap"
    scene_file(folder / "database", 1)
    long = f"./database/{'x' * 300}.png"
    path = folder / "database.json"
    path.write_text(json.dumps({"concept_dict": {"<far>": {"image": long},
                                                 "<bo>": {"image": ["./database/scene1.png", long]}}}))
    rc = cli.main(["import-rap", str(path), "--json", "--memory", str(settings.memory)])
    out, err = capsys.readouterr()
    assert rc == 1 and err == ""
    said = json.loads(out)
    assert said["imported"] == ["bo"] and said["missing"] == ["far"] and said["failed"] == {}
    assert said["missing_photos"] == {"bo": [str(folder / long)]}
    assert memory.get("bo").views == 1


def test_a_photo_behind_a_folder_this_account_may_not_search_fails_its_entry_alone(memory, settings, tmp_path,
                                                                                   capsys, monkeypatch):
    # Path.is_dir raised PermissionError there: a traceback, the entries after it never tried nor the report said
    import errno

    from edge_rap import cli

    folder = tmp_path / "rap"
    scene_file(folder / "database", 1)
    locked = folder / "locked" / "x.png"
    real_stat = Path.stat

    def stat(path: Path, *args, **kwargs):  # (root searches any folder, so the refusal is staged)
        if path == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    path = folder / "database.json"
    path.write_text(json.dumps({"concept_dict": {"<far>": {"image": "./locked/x.png"},
                                                 "<bo>": {"image": "./database/scene1.png"}}}))
    rc = cli.main(["import-rap", str(path), "--json", "--memory", str(settings.memory)])
    said = json.loads(capsys.readouterr().out)
    assert rc == 1 and said["imported"] == ["bo"] and list(said["failed"]) == ["far"]
    assert said["failed"]["far"].startswith(f"{locked}: cannot reach it ({os.strerror(errno.EACCES)}")
    assert memory.get("bo").views == 1


def test_a_path_that_is_no_rap_database_makes_no_memory(settings, tmp_path, capsys):
    # `import-rap FOLDER --memory new` (the folder, not its database.json) said so, and left an empty memory at
    # `new`, which later commands took for one
    from edge_rap import cli

    make_rap_database(tmp_path / "rap")
    for path, said in ((tmp_path / "rap", "is a folder; give its database.json"),
                       (tmp_path / "rap" / "database" / "scene1.png", "not a readable RAP database.json")):
        assert cli.main(["import-rap", str(path), "--memory", str(settings.memory)]) == 2
        assert said in capsys.readouterr().err
    assert not settings.memory.exists()


def test_export_then_import_round_trips(memory, embedder, settings, tmp_path):
    photos = tmp_path / "photos"
    memory.remember("bo", [scene_file(photos, 1), scene_file(photos, 2)], "our Shiba Inu, cinnamon coat", "dog")
    memory.remember("mug", [scene_file(photos, 3, suffix=".jpg")], "the blue mug", "cup")
    memory.remember("Ánya's bag", [scene_file(photos, 4)], "", "")
    out = export_rap(memory.store, tmp_path / "export")
    assert out == tmp_path / "export" / "database.json"
    raw = json.loads(out.read_text(encoding="utf-8"))
    assert set(raw["concept_dict"]) == {"<bo>", "<mug>", "<Ánya's bag>"}
    assert raw["concept_dict"]["<bo>"]["info"] == "our Shiba Inu, cinnamon coat"
    assert len(raw["concept_dict"]["<bo>"]["extra_images"]) == 1
    for entry in raw["concept_dict"].values():
        assert (out.parent / entry["image"]).is_file()

    fresh = open_memory(settings, embedder, memory=tmp_path / "fresh")
    report = import_rap(fresh, out)
    assert sorted(report.imported) == ["bo", "mug", "Ánya's bag"]
    assert not (report.missing or report.failed or report.skipped)
    assert signature(fresh) == signature(memory)
    retriever = open_retriever(fresh, settings)
    assert retriever.recognize(read_image_file(photos / "scene2.png").image).hits[0].concept.name == "bo"
    assert retriever.recognize(read_image_file(photos / "scene3.jpg").image).hits[0].concept.name == "mug"


def test_export_round_trips_names_whose_files_would_collide(memory, embedder, settings, tmp_path):
    # Extra views must not overwrite the photo of a concept whose name looks like "<name>-<k>".
    photos = tmp_path / "photos"
    memory.remember("bo", [scene_file(photos, 1), scene_file(photos, 2)], "two views", "dog")
    memory.remember("bo-1", [scene_file(photos, 3)], "another dog", "dog")
    out = export_rap(memory.store, tmp_path / "export")
    fresh = open_memory(settings, embedder, memory=tmp_path / "fresh")
    report = import_rap(fresh, out)
    assert sorted(report.imported) == ["bo", "bo-1"]
    assert signature(fresh) == signature(memory), "a photo of one concept was exported as another's"


def test_a_photo_the_memory_lost_is_named_and_the_rest_still_exported(memory, embedder, settings, tmp_path, capsys):
    """One stored photo gone (a damaged card, a file deleted by hand) failed the whole export with "cannot
    export (No such file or directory)", naming neither the photo nor its concept: the memory could not be
    saved at all. The rest goes out, the lost photo is named with its concept, exit status 1; reindex goes on
    past it too, naming the concept and what to do."""
    from edge_rap import cli

    photos = tmp_path / "photos"
    memory.remember("bo", [scene_file(photos, 1), scene_file(photos, 2), scene_file(photos, 3)], "our dog", "dog",
                    boxes=[None, Box(0, 0, 128, 128), Box(0, 0, 200, 200)])
    memory.remember("mug", [scene_file(photos, 4)], "the blue mug", "cup")
    memory.remember("ghost", [scene_file(photos, 5)], "", "")
    lost = [memory.store.views(memory.get("bo").id)[1].image_path,
            memory.store.views(memory.get("ghost").id)[0].image_path]
    for path in lost:
        Path(path).unlink()
    missing: list[str] = []
    out = export_rap(memory.store, tmp_path / "export", missing)
    assert missing == [f"<bo>: {lost[0]}", f"<ghost>: {lost[1]}"]
    raw = json.loads(out.read_text())["concept_dict"]
    assert set(raw) == {"<bo>", "<mug>"}  # <ghost> had no other photo
    assert raw["<bo>"]["boxes"] == [None, [0, 0, 200, 200]]  # each kept photo with its own region
    fresh = open_memory(settings, embedder, memory=tmp_path / "fresh")
    assert sorted(import_rap(fresh, out).imported) == ["bo", "mug"] and fresh.get("bo").views == 2
    fresh.close()

    capsys.readouterr()
    argv = ["--memory", str(settings.memory)]
    assert cli.main(["export-rap", str(tmp_path / "again"), "--json", *argv]) == 1
    result, err = capsys.readouterr()
    assert json.loads(result) == {"database": str(tmp_path / "again" / "database.json"),
                                  "missing": missing}
    assert err.splitlines() == [f"photo missing from the memory or damaged, not exported: {m}" for m in missing]
    assert cli.main(["reindex", *argv]) == 0  # the same embedder: their vectors kept, everyone still recognised
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "a photo of <bo>" in err[0] and "a photo of <ghost>" in err[1]
    assert all("edge-rap add-views" in line for line in err)


def test_a_photo_damaged_in_the_memory_is_named_not_exported(tmp_path):
    """A stored photo whose bytes changed (a bad sector, a bit flip) was copied out as it was, exit status 0: the
    backup then failed the import it was made for. Its name is its hash, so the damage is seen."""
    from fakes import fake_memory

    memory = fake_memory(tmp_path / "memory")
    memory.remember("bo", [scene_file(tmp_path / "photos", 1), scene_file(tmp_path / "photos", 2)])
    damaged = Path(memory.store.views(memory.get("bo").id)[0].image_path)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    missing: list[str] = []
    out = export_rap(memory.store, tmp_path / "export", missing)
    assert missing == [f"<bo>: {damaged} (damaged)"]
    entry = json.loads(out.read_text())["concept_dict"]["<bo>"]
    assert "extra_images" not in entry and len(list((tmp_path / "export" / "database").iterdir())) == 1


def test_a_database_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows Notepad (before 2019) saves UTF-8 with a byte order mark: the file was refused as "not a readable
    RAP database.json (Unexpected UTF-8 BOM ...)"."""
    path = make_rap_database(tmp_path / "rap")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert sorted(e.name for e in read_rap_database(path)) == ["bo", "broken", "ghost", "mug"]


def test_export_of_an_empty_memory_and_into_an_existing_folder(memory, tmp_path):
    out = export_rap(memory.store, tmp_path / "export")
    assert json.loads(out.read_text())["concept_dict"] == {}
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    out = export_rap(memory.store, tmp_path / "export")  # over the earlier export
    assert list(json.loads(out.read_text())["concept_dict"]) == ["<bo>"]
    assert not (tmp_path / "export" / "database.json.tmp").exists()


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not a readable RAP database"),
    ("[1, 2]", "no concept_dict"),
    (b"\xff\xfe\x00binary", "not a readable RAP database"),
])
def test_unreadable_database_is_one_line(content, message, memory, settings, tmp_path, capsys):
    from edge_rap import cli

    path = tmp_path / "database.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(EdgeRapError, match=message) as e:
        read_rap_database(path)
    assert "\n" not in str(e.value)
    capsys.readouterr()
    assert cli.main(["import-rap", str(path), "--memory", str(settings.memory)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message in err


def test_import_with_bad_names_reports_them_and_imports_the_rest(memory, tmp_path):
    folder = tmp_path / "rap"
    scene_file(folder, 1)
    scene_file(folder, 2)
    db = {"concept_dict": {
        "<good>": {"image": "scene1.png", "info": "fine"},
        "<a/b>": {"image": "scene2.png", "info": "slash"},
        "<>": {"image": "scene2.png", "info": "empty"},
    }}
    (folder / "database.json").write_text(json.dumps(db))
    report = import_rap(memory, folder / "database.json")
    assert report.imported == ["good"]
    assert set(report.failed) == {"a/b", ""}
    assert [c.name for c in memory.concepts()] == ["good"]


def test_names_from_a_database_are_printed_on_their_line_without_terminal_codes(memory, settings, tmp_path, capsys):
    # a database's "<bo\x1b[2J>" cleared the user's terminal as import-rap said it failed, "<new\nline>" split
    # its line in two, and "<\u202eevil>" printed the rest of its line backwards
    from edge_rap import cli

    folder = tmp_path / "rap"
    scene_file(folder, 1)
    scene_file(folder, 2)
    db = {"concept_dict": {"<good>": {"image": "scene1.png"}, "<bo\x1b[2J>": {"image": "scene2.png"},
                           "<new\nline>": {"image": "scene2.png"}, "<\u202eevil>": {"image": "scene2.png"},
                           "<gone\r>": {"image": "gone.png"}, "<outside>": {"image": "../a\nb.png"}}}
    (folder / "database.json").write_text(json.dumps(db))
    assert cli.main(["import-rap", str(folder / "database.json"), "--memory", str(settings.memory)]) == 1
    out, err = capsys.readouterr()
    assert out == "imported 1 concept\n"
    lines = err.splitlines()
    assert len(lines) == 5 and all(line.startswith(("failed <", "missing image")) for line in lines)
    assert not any(c in err for c in "\x1b\r\u202e")
    assert "failed <'bo\\x1b[2J'>" in err and "'gone\\r'" in err


def test_a_remembered_region_survives_export_and_import(tmp_path, settings, embedder):
    from edge_rap.memory.rapdb import export_rap, import_rap
    from edge_rap.types import Box

    memory = open_memory(settings, embedder, tmp_path / "a")
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "our dog", "dog", Box(10, 20, 200, 180))
    out = export_rap(memory.store, tmp_path / "exported")
    fresh = open_memory(settings, embedder, tmp_path / "b")
    assert import_rap(fresh, out).imported == ["bo"]
    assert [v.box for v in fresh.store.views(fresh.get("bo").id)] == [Box(10, 20, 200, 180)]
    # photos remembered with different regions (and one whole) keep each its own
    memory.add_views("bo", [scene_file(tmp_path / "photos", 2)], Box(0, 0, 150, 150))
    memory.add_views("bo", [scene_file(tmp_path / "photos", 3)])
    out = export_rap(memory.store, tmp_path / "exported")
    again = open_memory(settings, embedder, tmp_path / "c")
    assert import_rap(again, out).imported == ["bo"]
    assert [v.box for v in again.store.views(again.get("bo").id)] == [Box(10, 20, 200, 180), Box(0, 0, 150, 150),
                                                                      None]
    bad = json.loads(out.read_text())
    bad["concept_dict"]["<bo>"]["boxes"] = [[0, 0, 5, 5]]  # one for three photos
    out.write_text(json.dumps(bad))
    assert "one [x0, y0, x1, y1] or null per image (3)" in import_rap(open_memory(settings, embedder, tmp_path / "d"),
                                                                      out).failed["bo"]


def test_an_image_field_that_is_not_a_path_is_reported_for_its_entry(tmp_path):
    db = tmp_path / "database.json"
    db.write_text(json.dumps({"concept_dict": {"<ghost>": {"name": "ghost", "image": None, "info": ""},
                                               "<odd>": {"name": "odd", "image": 3, "info": ""},
                                               "<lone>": "not an object"}}))
    problems = {e.name: e.problem for e in read_rap_database(db)}
    assert problems == {"ghost": "", "odd": "its image is not a path or a list of paths",
                        "lone": "the entry is not an object"}


def test_text_fields_are_text_or_absent_never_a_python_spelling(tmp_path):
    db = tmp_path / "database.json"
    db.write_text(json.dumps({"concept_dict": {"<bo>": {"image": "a.png", "info": None, "category": None},
                                               "<mug>": {"image": "b.png", "category": 3},
                                               "<cat>": {"image": "c.png", "info": ["a", "list"]}}}))
    entries = {e.name: e for e in read_rap_database(db)}
    assert (entries["bo"].description, entries["bo"].category, entries["bo"].problem) == ("", "", "")
    assert entries["mug"].problem == "its category 3 is not text"
    assert entries["cat"].problem == 'its info ["a", "list"] is not text'


# --- malformed entries, deep nesting, paths outside the database, unsafe export targets (issue 14) -----------

def _database(folder: Path, entries: dict, raw: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "database.json"
    path.write_text(raw if raw is not None else json.dumps({"concept_dict": entries}))
    return path


BAD_BOXES = ["5", "true", "Infinity", "[1e400, 0, 10, 10]", '[0, 0, "a", 10]', "[1, 2, 3]", "[true, 0, 10, 10]",
             "[NaN, 0, 10, 10]", "[10, 10, 5, 5]"]


@pytest.mark.parametrize("box", BAD_BOXES)
def test_a_bad_box_is_reported_for_its_entry_and_the_rest_imported(box, memory, settings, tmp_path, capsys):
    from edge_rap import cli

    folder = tmp_path / "rap"
    scene_file(folder, 1)
    scene_file(folder, 2)
    raw = ('{"concept_dict": {"<good>": {"image": "scene1.png", "info": "fine"}, '
           f'"<boxed>": {{"image": "scene2.png", "box": {box}}}}}}}')
    path = _database(folder, {}, raw)
    report = import_rap(memory, path)
    assert report.imported == ["good"] and list(report.failed) == ["boxed"]
    assert "box" in report.failed["boxed"] and "\n" not in report.failed["boxed"]
    capsys.readouterr()
    assert cli.main(["import-rap", str(path), "--memory", str(tmp_path / "other")]) == 1
    out, err = capsys.readouterr()
    assert out == "imported 1 concept\n" and "failed <boxed>" in err and "Traceback" not in err


@pytest.mark.parametrize("allow_outside", [False, True])
def test_a_nul_character_in_an_image_path_is_reported_for_its_entry(allow_outside, settings, tmp_path, capsys):
    # `settings`: its home and models, not the developer's (the import embeds <good> with the default embedder)
    # "c\u0000.jpg" cannot name a file: its entry fails by name (resolving it must not end the import).
    from edge_rap import cli

    folder = tmp_path / "rap"
    scene_file(folder, 1)
    path = _database(folder, {"<good>": {"image": "scene1.png"}, "<a>": {"image": "c\u0000.jpg"},
                              "<b>": {"image": "scene1.png", "extra_images": ["d\u0000.jpg"]}})
    capsys.readouterr()
    rc = cli.main(["import-rap", str(path), "--json", "--memory", str(tmp_path / "memory"),
                   *(["--allow-outside"] if allow_outside else [])])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert rc == 1 and report["imported"] == ["good"] and sorted(report["failed"]) == ["a", "b"], err
    assert "NUL" in report["failed"]["a"] and "extra_images" in report["failed"]["b"]


def test_a_deeply_nested_database_is_one_line(memory, settings, tmp_path, capsys):
    from edge_rap import cli

    path = _database(tmp_path, {}, '{"concept_dict": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(EdgeRapError, match="nested too deeply"):
        read_rap_database(path)
    capsys.readouterr()
    assert cli.main(["import-rap", str(path), "--memory", str(settings.memory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-rap: ") and err.count("\n") == 1


def test_images_outside_the_database_folder_are_refused_unless_allowed(memory, settings, embedder, tmp_path,
                                                                         capsys):
    from edge_rap import cli

    folder = tmp_path / "shared" / "rap"
    outside = scene_file(tmp_path / "private", 3)
    scene_file(tmp_path / "private", 4)
    scene_file(folder, 1)
    (folder / "link.png").symlink_to(scene_file(tmp_path / "private", 5))  # (each its own photo: one is one concept's)
    path = _database(folder, {
        "<inside>": {"image": "scene1.png"},
        "<absolute>": {"image": str(outside)},
        "<dotdot>": {"image": "../../private/scene4.png"},
        "<symlink>": {"image": "link.png"},
    })
    report = import_rap(memory, path)
    assert report.imported == ["inside"]
    assert sorted(report.failed) == ["absolute", "dotdot", "symlink"]
    assert all("outside the database's folder" in why and "--allow-outside" in why for why in report.failed.values())

    fresh = open_memory(settings, embedder, memory=tmp_path / "fresh")
    assert sorted(import_rap(fresh, path, allow_outside=True).imported) == ["absolute", "dotdot", "inside", "symlink"]
    fresh.close()
    for flag, imported, rc in (([], 1, 1), (["--allow-outside"], 4, 0)):
        capsys.readouterr()
        mem = tmp_path / f"cli{len(flag)}"
        assert cli.main(["import-rap", str(path), "--json", "--memory", str(mem), *flag]) == rc
        assert len(json.loads(capsys.readouterr().out)["imported"]) == imported


def test_export_refuses_a_folder_that_is_not_an_earlier_export(memory, tmp_path, capsys):
    from edge_rap import cli

    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me\n")
    with pytest.raises(EdgeRapError, match="not an earlier export") as e:
        export_rap(memory.store, target)
    assert "\n" not in str(e.value)
    capsys.readouterr()
    assert cli.main(["export-rap", str(target), "--memory", str(memory.store.root)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_export_refuses_the_rap_database_it_was_imported_from(memory, tmp_path, capsys):
    # `import-rap rap/database.json`, then `export-rap rap` to save it back: its database.json and database/ were
    # taken for an earlier export and replaced whole, deleting RAP's own photos, those not imported too
    from edge_rap import cli

    rap = make_rap_database(tmp_path / "rap")
    import_rap(memory, rap)
    before = {p: p.read_bytes() for p in rap.parent.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert cli.main(["export-rap", str(rap.parent), "--memory", str(memory.store.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its database/ holds broken.png, scene1.png" in err
    assert {p: p.read_bytes() for p in rap.parent.rglob("*") if p.is_file()} == before
    export_rap(memory.store, tmp_path / "export")
    (tmp_path / "export" / "database" / "mochi-0123456789ab-1.jpg_large").write_bytes(b"")  # an older one's suffix
    export_rap(memory.store, tmp_path / "export")  # an earlier export is still replaced
    assert not (tmp_path / "export" / "database" / "mochi-0123456789ab-1.jpg_large").exists()


def test_export_refuses_a_rap_database_json_beside_an_empty_database_folder(memory, tmp_path, capsys):
    # a RAP database.json whose photos are elsewhere (or gone), beside an empty database/, was taken for an earlier
    # export: the user's database.json was replaced unsaid
    from edge_rap import cli

    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    rap = make_rap_database(tmp_path / "rap")
    for name in os.listdir(rap.parent / "database"):
        os.remove(rap.parent / "database" / name)
    for text in (rap.read_text(), "not json\n", '{"concept_dict": {"<x>": {"image": "/elsewhere/x.jpg"}}}\n'):
        rap.write_text(text)
        capsys.readouterr()
        assert cli.main(["export-rap", str(rap.parent), "--memory", str(memory.store.root)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not an earlier export: its database.json" in err
        assert rap.read_text() == text and os.listdir(rap.parent / "database") == []
    out = export_rap(memory.store, tmp_path / "export")
    (out.parent / "database.json").write_text(json.dumps({"concept_dict": {"<old>": {
        "image": "", "extra_images": ["./database/old-0123456789ab-1.png"]}}}))  # (4b342e1 wrote "" for none)
    export_rap(memory.store, out.parent)  # an earlier export's, its photos its own: still replaced
    assert list(json.loads(out.read_text())["concept_dict"]) == ["<bo>"]


def test_a_pipe_or_file_above_the_export_folder_is_named_as_such(memory, tmp_path):
    # `export-rap PIPE/x` said "cannot export (Not a directory)", naming neither the pipe nor what it is
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "plain").write_text("not a folder")
    for above, kind in ((tmp_path / "pipe", "a pipe"), (tmp_path / "plain", "a file")):
        with pytest.raises(EdgeRapError) as e:
            export_rap(memory.store, above / "x" / "y")
        assert str(e.value) == f"{above / 'x' / 'y'}: {above} is {kind}, not a folder"
    assert stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode) and (tmp_path / "plain").read_text() == "not a folder"


def test_export_never_writes_through_a_symlink(memory, tmp_path):
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = export_rap(memory.store, tmp_path / "export")
    photo = out.parent / json.loads(out.read_text())["concept_dict"]["<bo>"]["image"]
    photo.unlink()
    photo.symlink_to(victim)  # a link planted where the next export writes bo's photo
    written = out.read_bytes()
    (out.parent / "database.json").unlink()
    (out.parent / "database.json").symlink_to(victim)
    with pytest.raises(EdgeRapError, match="not an earlier export"):
        export_rap(memory.store, out.parent)  # database.json is a link: not our export
    (out.parent / "database.json").unlink()
    (out.parent / "database.json").write_bytes(written)
    export_rap(memory.store, out.parent)  # a link inside database/: replaced, not written through
    assert victim.read_text() == "precious\n"
    assert not photo.is_symlink() and read_image_file(photo).image.pixels.ndim == 3
    linked = tmp_path / "linked-export"
    linked.symlink_to(tmp_path / "export")
    with pytest.raises(EdgeRapError, match="symlink"):
        export_rap(memory.store, linked)


def test_export_over_an_earlier_export_leaves_no_stale_file(memory, tmp_path):
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    memory.remember("mug", [scene_file(tmp_path / "photos", 2)], "cup")
    out = export_rap(memory.store, tmp_path / "export")
    memory.forget("mug")
    out = export_rap(memory.store, tmp_path / "export")
    raw = json.loads(out.read_text())
    assert list(raw["concept_dict"]) == ["<bo>"]
    files = sorted(p.relative_to(out.parent).as_posix() for p in out.parent.rglob("*") if p.is_file())
    assert files == ["database.json", raw["concept_dict"]["<bo>"]["image"].removeprefix("./")]


def test_export_file_names_are_bounded_for_any_valid_name(memory, embedder, settings, tmp_path):
    long_names = ["🐈" * 64, "x" * 64, "Ánya's 🎒 bag", "a.b"]
    for k, name in enumerate(long_names):
        memory.remember(name, [scene_file(tmp_path / "photos", 1 + k), scene_file(tmp_path / "photos", 10 + k)])
    out = export_rap(memory.store, tmp_path / "export")
    for path in (out.parent / "database").iterdir():
        assert len(path.name.encode()) <= 64 and path.parent == out.parent / "database"
    fresh = open_memory(settings, embedder, memory=tmp_path / "fresh")
    assert sorted(import_rap(fresh, out).imported) == sorted(long_names)
    assert signature(fresh) == signature(memory)
    fresh.close()


def test_names_alike_in_one_database_are_skipped_and_a_bad_face_box_is_said_to_be_one(run, tmp_path, settings):
    folder = tmp_path / "rap"
    db = {"concept_dict": {
        "<Bo>": {"name": "Bo", "image": f"./{scene_file(folder, 1).name}"},
        "<bo>": {"name": "bo", "image": f"./{scene_file(folder, 2).name}"},  # the same name to a voice: a duplicate
        "<anya>": {"name": "anya", "image": f"./{scene_file(folder, 3).name}", "category": "person",
                   "faces": [[1, 2, 3]]},
    }}
    (folder / "database.json").write_text(json.dumps(db))
    rc, out, err = run("import-rap", folder / "database.json", "--json")
    report = json.loads(out)
    assert (report["imported"], report["skipped"]) == (["Bo"], ["bo"])
    assert report["failed"] == {"anya": "its face box [1, 2, 3] is not [x0, y0, x1, y1]"}
    del db["concept_dict"]["<anya>"]
    (folder / "database.json").write_text(json.dumps(db))
    rc, out, err = run("import-rap", folder / "database.json")
    assert rc == 0 and err == "" and "skipped (2): Bo, bo" in out  # a duplicate is no failure


def test_the_folder_of_a_database_given_for_it_names_the_file_to_give(memory, tmp_path):
    """`import-rap export/` (the folder `export-rap` wrote) said "[Errno 21] Is a directory": Python's words,
    not which file to give."""
    export_rap(memory.store, tmp_path / "export")
    with pytest.raises(EdgeRapError) as e:
        read_rap_database(tmp_path / "export")
    assert str(e.value) == f"{tmp_path / 'export'}: is a folder; give its database.json"
    (tmp_path / "other").mkdir()
    with pytest.raises(EdgeRapError) as e:
        read_rap_database(tmp_path / "other")
    assert str(e.value) == f"{tmp_path / 'other'}: is a folder, not a RAP database.json"


def test_a_memory_that_cannot_be_written_is_one_line_not_each_entry_failing_alike(settings, tmp_path, capsys):
    # `import-rap db.json --memory FILE/m` said "failed <bo>: ...: cannot write (Not a directory)" once per entry,
    # exit 1, as if the entries were at fault
    from edge_rap import cli

    database = make_rap_database(tmp_path / "rap")
    (tmp_path / "file").write_text("not a folder")
    memory = tmp_path / "file" / "memory"
    assert cli.main(["import-rap", str(database), "--memory", str(memory)]) == 2
    err = capsys.readouterr().err
    assert err == f"edge-rap: {memory}: {tmp_path / 'file'} is a file, not a folder; nothing was changed\n"


def test_os_junk_in_an_earlier_export_does_not_block_the_next(memory, tmp_path):
    # a Mac's Finder or Windows' Explorer opened the export: its .DS_Store / Thumbs.db / desktop.ini made the next
    # export refuse the folder as "not an earlier export"
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    out = export_rap(memory.store, tmp_path / "export")
    for junk in (".DS_Store", "Thumbs.db", "desktop.ini"):
        (out.parent / junk).write_bytes(b"view")
        (out.parent / "database" / junk).write_bytes(b"view")
    export_rap(memory.store, out.parent)
    assert sorted(p.name for p in out.parent.iterdir()) == [".DS_Store", "Thumbs.db", "database", "database.json",
                                                            "desktop.ini"]  # beside it: left in place
    assert all(EXPORTED_PHOTO.fullmatch(p.name) for p in (out.parent / "database").iterdir())
    (out.parent / "database" / "Thumbs.db").mkdir()  # a folder by that name may hold the user's files: refused
    with pytest.raises(EdgeRapError, match="database/ holds Thumbs.db"):
        export_rap(memory.store, out.parent)
    empty = tmp_path / "opened"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"view")
    export_rap(memory.store, empty)  # an empty folder the Finder opened is still empty


def test_an_older_edge_rap_export_is_refused_saying_what_it_is_and_what_to_do(memory, tmp_path):
    # before 4b342e1 an export named its photos as their concepts (bo.jpg, bo.views/1.jpg): the refusal said
    # "photos no export named", of the user's own export, and not what to do
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    old = tmp_path / "old"
    (old / "database" / "bo.views").mkdir(parents=True)
    (old / "database" / "bo.jpg").write_bytes(b"photo")
    (old / "database" / "bo.views" / "1.jpg").write_bytes(b"photo")
    (old / "database.json").write_text(json.dumps({"concept_dict": {"<bo>": {"image": "./database/bo.jpg"}}}))
    with pytest.raises(EdgeRapError) as e:
        export_rap(memory.store, old)
    assert str(e.value) == (f"{old}: not an export this edge_rap replaces: its database/ holds bo.jpg, bo.views (a "
                            "RAP database's photos, or an older edge_rap's export), which replacing it would delete; "
                            "export into another folder, or remove that one first")
    assert (old / "database" / "bo.views" / "1.jpg").read_bytes() == b"photo"
