"""RAP's database.json: import reports the missing and the unusable by name; export round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scenes import scene_file

from edge_rap.app import open_memory, open_retriever
from edge_rap.errors import EdgeRapError
from edge_rap.images import read_image_file
from edge_rap.memory.rapdb import export_rap, import_rap, read_rap_database


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


def test_export_then_import_round_trips(memory, embedder, settings, tmp_path):
    photos = tmp_path / "photos"
    memory.remember("bo", [scene_file(photos, 1), scene_file(photos, 2)], "our Shiba Inu, cinnamon coat", "dog")
    memory.remember("mug", [scene_file(photos, 3, suffix=".jpg")], "the blue mug", "cup")
    memory.remember("Ánya's bag", [scene_file(photos, 4)], "", "")
    out = export_rap(memory, tmp_path / "export")
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
    out = export_rap(memory, tmp_path / "export")
    fresh = open_memory(settings, embedder, memory=tmp_path / "fresh")
    report = import_rap(fresh, out)
    assert sorted(report.imported) == ["bo", "bo-1"]
    assert signature(fresh) == signature(memory), "a photo of one concept was exported as another's"


def test_export_of_an_empty_memory_and_into_an_existing_folder(memory, tmp_path):
    out = export_rap(memory, tmp_path / "export")
    assert json.loads(out.read_text())["concept_dict"] == {}
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "dog")
    out = export_rap(memory, tmp_path / "export")  # over the earlier export
    assert list(json.loads(out.read_text())["concept_dict"]) == ["<bo>"]
    assert not (tmp_path / "export" / "database.json.tmp").exists()


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not a readable RAP database"),
    ("[1, 2]", "no concept_dict"),
    ('{"concept_dict": {"<a>": "not an object"}}', "not an object"),
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


def test_a_remembered_region_survives_export_and_import(tmp_path, settings, embedder):
    from edge_rap.memory.rapdb import export_rap, import_rap
    from edge_rap.types import Box

    memory = open_memory(settings, embedder, tmp_path / "a")
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "our dog", "dog", Box(10, 20, 200, 180))
    out = export_rap(memory, tmp_path / "exported")
    fresh = open_memory(settings, embedder, tmp_path / "b")
    assert import_rap(fresh, out).imported == ["bo"]
    assert [v.box for v in fresh.store.views(fresh.get("bo").id)] == [Box(10, 20, 200, 180)]


def test_an_image_field_that_is_not_a_path_is_a_clear_error(tmp_path):
    import json

    from edge_rap.memory.rapdb import read_rap_database

    db = tmp_path / "database.json"
    db.write_text(json.dumps({"concept_dict": {"<ghost>": {"name": "ghost", "image": None, "info": ""},
                                               "<odd>": {"name": "odd", "image": 3, "info": ""}}}))
    with pytest.raises(EdgeRapError, match="'<odd>' has a image that is not a path"):
        read_rap_database(db)
