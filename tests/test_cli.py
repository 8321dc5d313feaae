"""The command line: remember, concepts, recognize --json, add-views, edit, rename, forget, import/export-rap."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
from scenes import noise, save, scene, scene_file

from edge_rap import cli



@pytest.fixture
def photos(tmp_path) -> Path:
    return tmp_path / "photos"


def concepts_json(run) -> list[dict]:
    rc, out, _ = run("concepts", "--json")
    assert rc == 0
    return json.loads(out)


def recognize_json(run, *images) -> list[dict]:
    rc, out, err = run("recognize", "--json", *images)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == len(images)
    return [json.loads(line) for line in lines]


def test_concepts_of_a_new_memory(run, settings):
    settings.memory.mkdir()  # an empty folder; a --memory that does not exist is refused (test_bad_input.py)
    assert concepts_json(run) == []
    rc, out, _ = run("concepts")
    assert rc == 0 and out.strip() == "no concepts remembered yet"
    assert not (settings.memory / "memory.sqlite").exists()  # listing creates nothing


def test_concepts_lists_each_concept_alike_with_or_without_description_and_category(run, photos):
    run("remember", "bo", scene_file(photos, 1), "--description", "our dog", "--category", "dog")
    run("remember", "mug", scene_file(photos, 2))
    rc, out, _ = run("concepts")
    assert rc == 0 and out == "<bo> [dog] 1 view: our dog\n<mug> 1 view\n"  # no dangling ": "
    assert len({tuple(c) for c in concepts_json(run)}) == 1  # the same keys for every concept
    run("remember", "José", scene_file(photos, 3))
    run("remember", "Anya", scene_file(photos, 4))
    assert [c["name"] for c in concepts_json(run)] == ["Anya", "bo", "José", "mug"]  # as read, not capitals first


def test_a_terminal_that_cannot_encode_a_name_shows_it_escaped(run, photos, settings, monkeypatch):
    # a Latin-1 console or PYTHONIOENCODING=ascii: `concepts` of an emoji name was a UnicodeEncodeError's traceback
    import io

    run("remember", "Mochi \U0001f431", scene_file(photos, 1))
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", terminal)
    assert cli.main(["concepts", "--memory", str(settings.memory)]) == 0
    terminal.flush()
    assert terminal.buffer.getvalue() == b"<Mochi \\U0001f431> 1 view\n"


def test_concepts_shows_an_old_name_holding_a_line_separator_on_its_line(run, photos, settings):
    # names of older memories may hold U+2028, which a terminal or a log viewer breaks the line at
    import sqlite3

    run("remember", "tea", scene_file(photos, 1))
    with sqlite3.connect(settings.memory / "memory.sqlite") as db:  # as a memory made before they were refused
        db.execute("UPDATE concepts SET name = ? WHERE name = 'tea'", ("tea\u2028pot",))
    rc, out, _ = run("concepts")
    assert rc == 0 and out == "<'tea\\u2028pot'> 1 view\n"


def test_remember_list_recognize(run, photos, settings):
    photos.mkdir()
    bo = save(photos / "bo.jpg", scene(1, width=320, height=240), quality=92)
    rc, out, err = run("remember", "bo", bo, "--description", "our Shiba Inu, cinnamon coat", "--category", "dog")
    assert (rc, err) == (0, "")
    assert out.strip() == "remembered <bo> (1 view)"
    rc, out, _ = run("remember", "mug", scene_file(photos, 2), "--json")
    assert rc == 0 and json.loads(out)["name"] == "mug" and json.loads(out)["views"] == 1

    listed = concepts_json(run)
    assert [c["name"] for c in listed] == ["bo", "mug"]
    assert listed[0]["description"] == "our Shiba Inu, cinnamon coat"
    assert listed[0]["category"] == "dog" and listed[0]["views"] == 1
    rc, out, _ = run("concepts")
    assert "<bo> [dog] 1 view: our Shiba Inu, cinnamon coat" in out

    unrelated = save(photos / "noise.png", noise(3, size=300))
    results = recognize_json(run, bo, unrelated, photos / "scene2.png")
    assert set(results[0]) == {"image", "concepts"}
    assert results[0]["image"] == str(bo)
    first = results[0]["concepts"][0]
    assert set(first) == {"name", "score", "box"}
    assert first["name"] == "bo"
    assert isinstance(first["score"], float) and 0.5 <= first["score"] <= 1.0001
    assert first["box"] == [0, 0, 320, 240]  # the whole image, in its own pixels (W, H)
    assert all(c["name"] != "mug" for c in results[0]["concepts"])
    assert results[1] == {"image": str(unrelated), "concepts": []}
    assert results[2]["concepts"][0]["name"] == "mug"
    assert results[2]["concepts"][0]["box"] == [0, 0, 256, 256]

    rc, out, _ = run("recognize", bo, unrelated)
    assert rc == 0
    assert out.splitlines()[0].startswith(f"{bo}: <bo> ")
    assert out.splitlines()[1] == f"{unrelated}: none of my concepts"


def test_recognize_box_of_a_large_photo_is_in_the_files_pixels(run, photos):
    # A photo larger than MAX_SIDE is decoded reduced; boxes are still in the file's own pixels, exactly.
    from PIL import Image

    from edge_rap.perceive.images import read_image_file
    from edge_rap.types import Box

    photos.mkdir()
    run("remember", "bo", scene_file(photos, 1))
    path = photos / "large.jpg"
    Image.fromarray(scene(1)).resize((4096, 3071)).save(path, quality=85)
    assert read_image_file(path).image.full_box == Box(0, 0, 4096, 3071)
    (result,) = recognize_json(run, path)
    assert result["concepts"] and result["concepts"][0]["name"] == "bo"
    x0, y0, x1, y1 = result["concepts"][0]["box"]
    assert 0 <= x0 < x1 <= 4096 and 0 <= y0 < y1 <= 3071
    assert (x1 - x0) * (y1 - y0) >= 0.5 * 4096 * 3071  # the photo is the concept: its box is most of it


def test_drawings_never_write_over_a_photo_only_over_earlier_drawings(run, photos):
    """`recognize photos/*.jpg --draw photos/` wrote each drawing over the photo it was drawn from (frame.jpg),
    and a frame.png's over a frame.jpg beside it: the user's photos were lost. A name that holds a file is
    numbered instead; an earlier drawing is replaced, so that running it again adds nothing."""
    photos.mkdir()
    run("remember", "bo", scene_file(photos, 1))
    frame_jpg = save(photos / "frame.jpg", scene(1), quality=92)
    frame_png = save(photos / "frame.png", scene(2))
    notes = photos / "notes.jpg"
    notes.write_text("not a drawing")
    before = {p.name: p.read_bytes() for p in (frame_jpg, frame_png, notes)}
    for _ in range(2):
        rc, out, err = run("recognize", frame_jpg, frame_png, notes, "--draw", photos)
        assert rc == 2 and "notes.jpg" in err  # notes.jpg is no image: said, the others drawn
        assert {p.name: p.read_bytes() for p in (frame_jpg, frame_png, notes)} == before
        assert sorted(p.name for p in photos.iterdir()) == ["frame-1.jpg", "frame-2.jpg", "frame.jpg", "frame.png",
                                                            "notes.jpg", "scene1.png"]
    from edge_rap.draw import is_drawing

    assert is_drawing(photos / "frame-1.jpg") and is_drawing(photos / "frame-2.jpg")
    assert not is_drawing(frame_jpg)


def test_each_image_says_where_its_drawing_went(run, photos):
    # frame.jpg and frame.png are drawn as frame.jpg and frame-1.jpg: which is which was not said anywhere
    photos.mkdir()
    run("remember", "bo", scene_file(photos, 1))
    frame_jpg, frame_png = save(photos / "frame.jpg", scene(1), quality=92), save(photos / "frame.png", scene(2))
    out_dir, missing = photos.parent / "drawn", photos / "gone.jpg"
    rc, out, _ = run("recognize", frame_jpg, frame_png, missing, "--draw", out_dir, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert rc == 2 and [line["drawing"] for line in lines] == [str(out_dir / "frame.jpg"),
                                                                str(out_dir / "frame-1.jpg"), None]
    rc, out, _ = run("recognize", frame_png, "--draw", out_dir)
    assert rc == 0 and out.rstrip().endswith(f"(drawn: {out_dir / 'frame.jpg'})")


def test_a_draw_folder_that_cannot_take_drawings_is_said_before_anything_is_recognised(run, photos):
    # --draw naming a file: each image was recognised, then "FILE: cannot write the drawing (File exists)"
    photos.mkdir()
    run("remember", "bo", scene_file(photos, 1))
    rc, out, err = run("recognize", photos / "scene1.png", "--draw", photos / "scene1.png")
    assert (rc, out) == (2, "") and err == f"edge-rap: --draw {photos / 'scene1.png'}: is a file, not a folder\n"


def test_drawings_the_disk_is_full_for_leave_no_folder_recognize_made(run, photos, monkeypatch):
    # `recognize --draw D` on a full disk exited 2 and left the empty D it made (export-rap removes its own)
    import errno

    from PIL import Image

    photos.mkdir()
    run("remember", "bo", scene_file(photos, 1))

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    rc, out, err = run("recognize", photos / "scene1.png", "--draw", photos.parent / "new" / "drawn")
    assert rc == 2 and "No space left on device" in err
    assert not (photos.parent / "new").exists()


def test_recognize_an_empty_memory(run, photos, settings):
    settings.memory.mkdir()
    assert recognize_json(run, scene_file(photos, 1))[0]["concepts"] == []


def test_events_of_a_forgotten_concept_that_its_forget_kept_are_shown_by_its_name(run, photos, settings):
    # a forget whose log failed kept the concept's events (and says "forget <X> again"): `events` listed them,
    # `events --name X` said "no concept named 'X'"; a name alike of two gone ones is asked, as forget asks it
    import time

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    assert run("remember", "bo", scene_file(photos, 1))[0] == 0
    log = EventLog(settings.memory)
    for name in ("Zoë\u00b4s mug", "bo", "Bo's ball", "Bo\u00b4s ball"):
        log.add(Event("arrived", name, "den", 1.0, time.time()))
    log.close()
    rc, out, err = run("events", "--name", "zoë\u2019s MUG", "--json")
    assert rc == 0 and [(e["type"], e["name"]) for e in json.loads(out)] == [("arrived", "Zoë\u00b4s mug")]
    assert err == "edge-rap: <Zoë\u00b4s mug> is forgotten; these are the events its forget kept (forget <Zoë\u00b4s " \
                  "mug> again to remove them)\n"
    assert [e["name"] for e in json.loads(run("events", "--name", "Bo's ball", "--json")[1])] == ["Bo's ball"]
    rc, out, err = run("events", "--name", "bo's BALL")
    assert rc == 2 and out == "" and "could be 'Bo\u00b4s ball' or \"Bo's ball\"" in err
    rc, out, err = run("events", "--name", "bo", "--json")  # a remembered one's: no note
    assert rc == 0 and [e["name"] for e in json.loads(out)] == ["bo"] and err == ""


def test_events_of_a_gone_concept_kept_under_the_very_spelling_asked_are_its_not_a_remembered_alike_ones(
        run, photos, settings):
    # forget <Bo´s ball> forgets the events a failed forget kept under that spelling, not <Bo's ball> remembered
    # beside them: `events --name` of that spelling listed the remembered one's instead
    import time

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    assert run("remember", "Bo's ball", scene_file(photos, 1))[0] == 0
    log = EventLog(settings.memory)
    for name, when in (("Bo\u00b4s ball", 2.0), ("Bo's ball", 1.0)):
        log.add(Event("arrived", name, "den", 1.0, time.time() - when))
    log.close()
    rc, out, err = run("events", "--name", "Bo\u00b4s ball", "--json")
    assert rc == 0 and [e["name"] for e in json.loads(out)] == ["Bo\u00b4s ball"] and "is forgotten" in err
    rc, out, err = run("events", "--name", "bo\u2019s BALL", "--json")  # any other spelling: the remembered one's
    assert rc == 0 and [e["name"] for e in json.loads(out)] == ["Bo's ball"] and err == ""
    assert run("forget", "Bo\u00b4s ball")[0] == 0  # as forget takes it: the kept events go, the concept stays
    assert [e["name"] for e in json.loads(run("events", "--json")[1])] == ["Bo's ball"]


def test_a_name_is_found_in_any_case_and_an_unknown_one_is_an_error(run, photos, settings):
    import time

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    assert run("remember", "bo", scene_file(photos, 1), "--description", "dog")[0] == 0
    log = EventLog(settings.memory)
    log.add(Event("arrived", "bo", "den", 1.0, time.time()))
    log.close()
    rc, out, _ = run("events", "--name", "Bo", "--json")
    assert rc == 0 and [(e["type"], e["name"]) for e in json.loads(out)] == [("arrived", "bo")]
    rc, out, err = run("events", "--name", "nobody")
    assert rc == 2 and out == "" and "no concept named 'nobody'" in err
    rc, out, _ = run("edit", "BO", "--description", "our dog", "--json")
    assert rc == 0 and json.loads(out)["name"] == "bo"
    rc, out, _ = run("rename", "BO", "bobo")  # the events follow the name as stored
    assert rc == 0 and out == "renamed <bo> to <bobo>\n"
    assert [e["name"] for e in json.loads(run("events", "--json")[1])] == ["bobo"]


def test_add_views_edit_rename_forget(run, photos, settings):
    assert run("remember", "bo", scene_file(photos, 1), "--description", "dog")[0] == 0
    rc, out, _ = run("add-views", "bo", scene_file(photos, 2), scene_file(photos, 3))
    assert rc == 0 and out.strip() == "<bo> now has 3 views"
    rc, out, _ = run("edit", "bo", "--description", "our dog", "--category", "pet", "--json")
    assert rc == 0 and json.loads(out)["description"] == "our dog"
    assert concepts_json(run)[0]["category"] == "pet"
    rc, out, _ = run("edit", "bo", "--category", "pet")  # the value it has: was "updated <bo>", as if changed
    assert rc == 0 and out.strip() == "<bo> already has that category: nothing changed"
    rc, out, _ = run("edit", "bo", "--description", "our  dog", "--category", "dog")
    assert rc == 0 and out.strip() == "updated <bo>"

    rc, out, _ = run("rename", "bo", "bobo")
    assert rc == 0 and out.strip() == "renamed <bo> to <bobo>"
    assert [c["name"] for c in concepts_json(run)] == ["bobo"]
    assert recognize_json(run, photos / "scene3.png")[0]["concepts"][0]["name"] == "bobo"
    updated = concepts_json(run)[0]["updated"]
    rc, out, _ = run("rename", "Bobo", "bobo")  # the name it has: was "renamed <bobo> to <bobo>", a write
    assert rc == 0 and out.strip() == "<bobo> is already named so: nothing changed"
    assert concepts_json(run)[0]["updated"] == updated

    image_files = [p for p in (settings.memory / "images").rglob("*") if p.is_file()]
    assert len(image_files) == 3
    rc, out, _ = run("forget", "<bobo>")
    assert rc == 0 and out.strip() == "forgot <bobo>"
    assert concepts_json(run) == []
    assert not any(p.exists() for p in image_files)
    assert recognize_json(run, photos / "scene1.png")[0]["concepts"] == []
    rc, _, err = run("forget", "bobo")
    assert rc == 2 and err.strip() == "edge-rap: no concept named 'bobo'"


def test_every_command_that_changes_or_writes_answers_json(run, photos, tmp_path):
    # A script reads the outcome as JSON, not by parsing the human line.
    run("remember", "bo", scene_file(photos, 1), "--description", "dog")
    rc, out, _ = run("add-views", "bo", scene_file(photos, 2), "--json")
    assert rc == 0 and json.loads(out)["views"] == 2
    rc, out, _ = run("rename", "bo", "bobo", "--json")
    assert rc == 0 and (json.loads(out)["old"], json.loads(out)["name"]) == ("bo", "bobo")
    rc, out, _ = run("reindex", "--json")
    assert rc == 0 and json.loads(out) == {"views": 2, "faces": 0, "unreadable": [], "unrecognisable": []}
    rc, out, _ = run("export-rap", tmp_path / "exported", "--json")
    assert rc == 0 and json.loads(out) == {"database": str(tmp_path / "exported" / "database.json"), "missing": []}
    rc, out, _ = run("forget", "bobo", "--json")
    assert rc == 0 and json.loads(out)["name"] == "bobo" and json.loads(out)["description"] == "dog"


def test_recognize_with_a_missing_image_goes_on(run, photos):
    run("remember", "bo", scene_file(photos, 1))
    rc, out, err = run("recognize", "--json", photos / "missing.jpg", photos / "scene1.png")
    assert rc == 2  # the user's error, as everywhere; the other image is still answered
    assert err.count("\n") == 1 and "no such file" in err
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["concepts"] == [] and "no such file" in first["error"]
    assert second["concepts"][0]["name"] == "bo"


def test_recognize_lists_each_images_concepts_best_first(run, photos, monkeypatch):
    # retrieval's own order put the people found by face first and the concepts only a crop found last: a list
    # read as a ranking ("<mug> 0.61, <bo> 0.93") had the weaker first
    from edge_rap.household import Household
    from edge_rap.types import Box, Concept, Hit, Recognition

    run("remember", "bo", scene_file(photos, 1))
    hits = [Hit(Concept(k, name, "", "", 0.0, 0.0), score, 0.5, Box(0, 0, 8, 8))
            for k, (name, score) in enumerate((("mug", 0.61), ("bo", 0.93), ("teapot", 0.75)))]
    monkeypatch.setattr(Household, "recognize", lambda self, image: Recognition(image.source, image.size, hits))
    rc, out, _ = run("recognize", photos / "scene1.png")
    assert rc == 0 and out.strip().endswith(": <bo> 0.93, <teapot> 0.75, <mug> 0.61")
    (result,) = recognize_json(run, photos / "scene1.png")
    assert [c["name"] for c in result["concepts"]] == ["bo", "teapot", "mug"]


def test_an_image_that_cannot_be_recognised_does_not_stop_the_others(run, photos, monkeypatch):
    # a 60 x 50 thumbnail failed inside recognition ("box [57, 25, 60, 37] keeps under 4 pixels a side") and
    # the images after it were never recognised
    from edge_rap.errors import EdgeRapError
    from edge_rap.household import Household

    run("remember", "bo", scene_file(photos, 1))
    recognize = Household.recognize

    def fails_on_thumbnails(self, image):
        if "thumb" in image.source:
            raise EdgeRapError(f"{image.source}: box [57, 25, 60, 37] keeps under 4 pixels a side")
        return recognize(self, image)

    monkeypatch.setattr(Household, "recognize", fails_on_thumbnails)
    thumb = save(photos / "thumb.png", scene(2, width=60, height=50))
    rc, out, err = run("recognize", "--json", thumb, photos / "scene1.png")
    first, second = (json.loads(line) for line in out.splitlines())
    assert rc == 2 and err.count("\n") == 1 and "keeps under 4 pixels" in first["error"]
    assert first["concepts"] == [] and second["concepts"][0]["name"] == "bo"


def test_import_and_export_rap(run, photos, tmp_path, settings):
    rap = tmp_path / "rap"
    scene_file(rap / "database", 1)
    scene_file(rap / "database", 2)
    (rap / "database.json").write_text(json.dumps({"concept_dict": {
        "<bo>": {"name": "bo", "image": ["./database/scene1.png"], "info": "our dog", "category": "dog"},
        "<mug>": {"name": "mug", "image": ["./database/scene2.png"], "info": "blue mug", "category": "cup"},
        "<ghost>": {"name": "ghost", "image": ["./database/gone.png"], "info": "", "category": ""},
    }}))
    rc, out, _ = run("import-rap", rap / "database.json", "--json")
    assert rc == 1  # two imported, one missing: a script must see it
    report = json.loads(out)
    assert sorted(report["imported"]) == ["bo", "mug"]
    assert report["missing"] == ["ghost"] and report["failed"] == {} and report["skipped"] == []
    assert {c["name"]: c["description"] for c in concepts_json(run)} == {"bo": "our dog", "mug": "blue mug"}

    rc, out, err = run("import-rap", rap / "database.json")
    assert rc == 1  # nothing imported, one missing
    assert "missing image, not imported (1): ghost" in err
    assert out == "imported 0 concepts\nalready remembered, skipped (2): bo, mug\n"

    rc, out, _ = run("export-rap", tmp_path / "exported")
    assert rc == 0 and out.strip() == f"wrote {tmp_path / 'exported' / 'database.json'}"
    exported = json.loads((tmp_path / "exported" / "database.json").read_text())
    assert {k: (v["info"], v["category"]) for k, v in exported["concept_dict"].items()} == {
        "<bo>": ("our dog", "dog"), "<mug>": ("blue mug", "cup")}


def test_import_rap_into_fresh_memory_matches(run, tmp_path, settings, capsys):
    photos = tmp_path / "photos"
    run("remember", "bo", scene_file(photos, 1), "--description", "our dog", "--category", "dog")
    run("remember", "mug", scene_file(photos, 2), "--description", "blue mug", "--category", "cup")
    assert run("export-rap", tmp_path / "exported")[0] == 0
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    assert cli.main(["import-rap", str(tmp_path / "exported" / "database.json"), "--memory", str(fresh)]) == 0
    assert capsys.readouterr().out.startswith("imported 2 concepts")
    assert cli.main(["concepts", "--json", "--memory", str(fresh)]) == 0
    again = json.loads(capsys.readouterr().out)
    original = concepts_json(run)
    key = lambda c: (c["name"], c["description"], c["category"], c["views"])  # noqa: E731
    assert [key(c) for c in again] == [key(c) for c in original]


def test_the_options_every_command_takes_may_come_before_the_command(run, photos, settings, tmp_path, capsys):
    # `edge-rap --memory DIR concepts` (git's and docker's way) was "invalid choice: 'DIR'", a usage error
    photos.mkdir()
    assert run("remember", "bo", scene_file(photos, 1))[0] == 0
    capsys.readouterr()
    assert cli.main(["--memory", str(settings.memory), "-v", "concepts", "--json"]) == 0
    assert [c["name"] for c in json.loads(capsys.readouterr().out)] == ["bo"]
    elsewhere = tmp_path / "elsewhere"
    assert cli.main(["--memory", str(elsewhere), "concepts", "--memory", str(settings.memory), "--json"]) == 0
    assert [c["name"] for c in json.loads(capsys.readouterr().out)] == ["bo"]  # after the command wins
    assert cli.main(["--memory", str(elsewhere), "concepts"]) == 2 and not elsewhere.exists()
    assert cli.main(["--memory", "", "concepts"]) == 2  # empty, as after the command: refused, not the default
    assert "--memory '' is empty" in capsys.readouterr().err


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("remember", "recognize", "concepts", "forget", "import-rap", "export-rap", "reindex"):
        assert command in out
    assert "exit status: 0 done; 1 done in part" in " ".join(out.split())  # a script's writer reads it here


def test_reindex_command(run, photos):
    run("remember", "bo", scene_file(photos, 1))
    run("add-views", "bo", scene_file(photos, 2))
    rc, out, _ = run("reindex")
    assert rc == 0 and out.strip() == "re-embedded 2 reference views"
    assert recognize_json(run, photos / "scene2.png")[0]["concepts"][0]["name"] == "bo"


def test_reindex_after_an_upgrade_goes_on_past_a_missing_photo_and_says_what_to_do(run, photos, settings, caplog):
    # it stopped at the missing photo, "nothing was changed", and then every recognize refused the memory
    import sqlite3

    from edge_rap.memory.store import Store

    run("remember", "bo", scene_file(photos, 1), "--description", "our dog")
    run("remember", "anya", scene_file(photos, 2))
    store = Store(settings.memory)
    Path(store.views(store.get("bo").id)[0].image_path).unlink()
    store.close()
    db = sqlite3.connect(settings.memory / "memory.sqlite")
    with db:  # as an older export of the embedder made the vectors
        db.execute("UPDATE spaces SET fingerprint = ?", ("0" * 64,))
    db.close()
    rc, out, err = run("reindex")
    assert rc == 1 and out == "re-embedded 1 reference view\n"
    assert [line.split(": ", 1)[1] for line in err.splitlines()] == [
        "no such file (a photo of <bo>): not re-embedded; restore the file from a backup, or give <bo> another "
        "photo: edge-rap add-views bo PHOTO", "edge-rap add-views bo PHOTO"]
    rc, out, _ = run("reindex", "--json")
    assert rc == 1 and json.loads(out)["unrecognisable"] == ["bo"]
    rc, out, _ = run("concepts")
    assert out.splitlines() == ["<anya> 1 view", "<bo> 1 view: our dog (cannot be recognised until it has a "
                                "readable photo: edge-rap add-views bo PHOTO)"]
    assert [c["recognisable"] for c in concepts_json(run)] == [True, False]
    caplog.clear()
    rc, out, _ = run("recognize", scene_file(photos, 2))  # the others are recognised; no reindex asked for ever
    assert rc == 0 and "<anya>" in out and "remembered with another embedder" not in caplog.text
    assert "<bo> cannot be recognised: the last reindex could read none of their photos" in caplog.text
    assert "edge-rap add-views NAME PHOTO" in caplog.text
    rc, out, _ = run("doctor")
    assert "cannot be recognised until given a readable photo (edge-rap add-views NAME PHOTO): <bo>" in out
    assert run("add-views", "bo", scene_file(photos, 1))[0] == 0  # the very photo it had
    assert run("reindex") == (0, "re-embedded 2 reference views\n", "")
    assert recognize_json(run, scene_file(photos, 1))[0]["concepts"][0]["name"] == "bo"


def test_a_reader_that_leaves_the_pipe_early_gets_no_traceback(settings):
    # `edge-rap models list --json | head -c 0`: the output cannot be written, and the command stops quietly.
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader has already gone
    child = subprocess.run([sys.executable, "-m", "edge_rap", "models", "list", "--json"], stdout=write,
                           stderr=subprocess.PIPE, text=True, env=os.environ, timeout=120)
    os.close(write)
    assert child.returncode == 141
    assert child.stderr == ""
    closed = subprocess.run([sys.executable, "-m", "edge_rap", "models", "list"], preexec_fn=lambda: os.close(1),
                            stderr=subprocess.PIPE, text=True, env=os.environ, timeout=120)
    assert closed.returncode == 0 and closed.stderr == ""  # started with no stdout at all: nothing to say


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("argv", [["concepts", "--json"], ["models", "list"]])
def test_output_that_cannot_be_written_is_one_line_whatever_the_command(settings, argv):
    # `edge-rap concepts --json > /dev/full`: a full disk under the output is said once, exit 2, no traceback.
    import os
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        child = subprocess.run([sys.executable, "-m", "edge_rap", *argv], stdout=full, stderr=subprocess.PIPE,
                               text=True, env=os.environ, timeout=120)
    assert child.returncode == 2
    assert child.stderr == "edge-rap: cannot write the output (No space left on device)\n"


def test_a_full_disk_under_the_memory_is_not_said_to_be_the_output(settings, monkeypatch):
    # Only stdout's own failures are "cannot write the output": the command's OSError stays what it is.
    import errno

    def full_memory(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "cmd_concepts", full_memory)
    with pytest.raises(OSError) as raised:
        cli.main(["concepts"])
    assert type(raised.value) is OSError


def test_models_list_json_gives_every_model_its_role(run):
    rc, out, _ = run("models", "list", "--json")
    rows = json.loads(out)
    embedder = next(r for r in rows if r["name"] == "efficientnet-lite0-int8")
    assert rc == 0 and embedder["role"] == "image_embedder" and embedder["dim"] > 0 and embedder["licence"]
    assert all("role" in r for r in rows)


def test_models_list_shows_a_model_whose_manifest_is_broken_beside_the_others(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "models"
    (cache / "broken").mkdir(parents=True)
    (cache / "broken" / "manifest.json").write_text('{"name": "bro')  # cut short as it was copied
    (cache / "mine").mkdir()
    (cache / "mine" / "manifest.json").write_text(json.dumps({"name": "mine", "role": "image_embedder", "files": {},
                                                             "output": {"dim": 8}, "licence": "MIT"}))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(cache))
    assert cli.main(["models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mine"]["dim"] == 8 and rows["mine"]["problem"] is None
    assert rows["broken"]["role"] is None and "unreadable manifest" in rows["broken"]["problem"]
    assert set(rows["broken"]) == set(rows["mine"])
    assert cli.main(["models", "list"]) == 0
    assert "broken  (unusable: " in capsys.readouterr().out


def test_readers_of_a_read_only_memory_remove_the_snapshot_they_read(run, photos, settings, monkeypatch, caplog,
                                                                     temp_folder):
    """A read-only memory with an unmerged -wal and no -shm is read from a private copy (Store._open_readonly):
    each command must close its memory, which removes the copy, or every run leaves one in the temp folder."""
    import sqlite3

    from edge_rap.memory.store import Store

    assert run("remember", "bo", scene_file(photos, 1))[0] == 0
    keeper = sqlite3.connect(settings.memory / "memory.sqlite")  # no checkpoint at the writer's close: the -wal stays
    keeper.execute("PRAGMA wal_autocheckpoint = 0")
    keeper.execute("SELECT COUNT(*) FROM concepts").fetchone()
    assert run("remember", "anya", scene_file(photos, 2))[0] == 0
    connect = Store._connect

    def no_shm(target, uri=False):  # as in a read-only folder, where SQLite cannot make the -shm
        if str(target).endswith("?mode=ro"):
            raise sqlite3.OperationalError("unable to open database file")
        return connect(target, uri)

    monkeypatch.setattr(Store, "_connect", staticmethod(no_shm))
    try:
        for argv in (["concepts", "--json"], ["recognize", "--json", scene_file(photos, 2)]):
            caplog.clear()
            rc, out, err = run(*argv)
            assert rc == 0 and "anya" in out, err  # the commit still in the -wal is seen
            assert "reading a snapshot copy" in caplog.text
            assert list(temp_folder.glob("edge-rap-*/*")) == [], argv  # (this process's own folder is kept)
    finally:
        keeper.close()


@pytest.mark.parametrize("argv", [["models", "pull", "--json", "whisper-base.en"],
                                  ["models", "--json", "pull", "whisper-base.en"],
                                  ["models", "-v", "pull", "whisper-base.en", "--json", "--memory", "m"]])
def test_models_pull_takes_its_name_after_an_option(argv):
    """`models pull --json NAME` was refused ("unrecognized arguments: NAME"): argparse gave `pull` both optional
    positionals. An option before the subcommand is kept too."""
    args = cli.build_parser().parse_args(argv)
    assert (args.models_command, args.pulled, args.json) == ("pull", "whisper-base.en", True)
    assert args.verbose == ("-v" in argv) and args.memory == ("m" if "--memory" in argv else None)


def test_models_lists_without_a_subcommand():
    args = cli.build_parser().parse_args(["models", "--json"])
    assert (args.models_command, args.json, args.verbose) == (None, True, False)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["models", "pull"])  # pull needs its NAME


def test_every_option_says_what_it_does_and_its_default():
    """`--help` is where a user learns an option: one shown bare (`--json`, `--box x0,y0,x1,y1`) says nothing of
    what it prints or does, and a default left unsaid must be guessed."""
    from parsers import every_parser, unexplained

    assert unexplained(every_parser(cli.build_parser(), ("edge-rap",))) == ([], [])


def test_concepts_json_help_names_every_key_it_prints(run, tmp_path):
    # `concepts --json` printed "recognisable", which its --help ("each as remember --json prints it") never named
    from parsers import every_parser

    rc, out, _ = run("remember", "--json", "bo", save(tmp_path / "bo.png", scene(1)))
    remembered = json.loads(out)
    (listed,) = concepts_json(run)
    parser = dict(every_parser(cli.build_parser(), ("edge-rap",)))[("edge-rap", "concepts")]
    (option,) = [a for a in parser._actions if "--json" in a.option_strings]
    assert rc == 0 and [key for key in listed if key not in remembered and key not in option.help] == []


def test_an_unknown_option_shows_the_usage_of_the_command_it_was_given_to(capsys):
    # `remember bo bo.jpg -q` showed the top level's usage, every command listed, not remember's options
    with pytest.raises(SystemExit) as e:
        cli.main(["remember", "bo", "bo.jpg", "-q"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("usage: edge-rap remember ") and err.endswith("error: unrecognized arguments: -q\n")


@pytest.mark.parametrize("argv, usage", [(["--vers"], "edge-rap ["), (["--foo"], "edge-rap ["),
                                         (["models", "list", "--js"], "edge-rap models list [")])
def test_an_unknown_option_is_named_with_the_usage_of_the_command_given(capsys, argv, usage):
    # before a command, "the following arguments are required: command", the option never named; after `models list`,
    # models's usage, not list's
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.startswith(f"usage: {usage}")
    assert err.endswith(f"error: unrecognized arguments: {argv[-1]}\n") and "required" not in err
    with pytest.raises(SystemExit) as refused:  # no command at all is still said so
        cli.main(["-v"])
    assert refused.value.code == 2 and capsys.readouterr().err.endswith("required: command\n")


def test_an_unknown_option_before_the_command_is_named_with_the_top_levels_usage(capsys):
    # `edge-rap --foo concepts` named --foo with concepts' usage, as if concepts had been given it
    with pytest.raises(SystemExit) as refused:
        cli.main(["--foo", "concepts", "--bar"])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.startswith("usage: edge-rap [")
    assert err.endswith("edge-rap: error: unrecognized arguments: --foo\n")


def test_an_unknown_option_before_a_subcommand_is_named_with_its_commands_usage(capsys):
    # `edge-rap models --x list` named --x with list's usage, as if list had been given it
    for argv, usage in ((["models", "--x", "list"], "edge-rap models"), (["models", "--x"], "edge-rap models"),
                        (["models", "list", "--x"], "edge-rap models list"),
                        (["models", "--x", "list", "--y"], "edge-rap models")):  # the first, as before the command
        with pytest.raises(SystemExit) as refused:
            cli.main(argv)
        err = capsys.readouterr().err
        assert refused.value.code == 2 and err.startswith(f"usage: {usage} [")
        assert err.endswith(f"{usage}: error: unrecognized arguments: --x\n"), argv


@pytest.mark.parametrize("argv, said", [
    (["concepts", "--", "--json"], "stray argument after `--`: --json (what follows `--` is never an option)"),
    (["models", "list", "-x", "--", "a", "b"], "unrecognized arguments: -x; stray arguments after `--`: a b"),
    # once a positional took an argument after `--`, argparse dropped the `--` from what it did not take
    (["edit", "--", "bo", "--description", "x"], "stray arguments after `--`: --description x (what follows"),
    (["rename", "-y", "bo", "--", "-x", "-y"], "unrecognized arguments: -y; stray argument after `--`: -y (what")])
def test_what_follows_a_double_dash_is_named_as_stray_arguments(capsys, argv, said):
    # `concepts -- --json` was argparse's "unrecognized arguments: -- --json", the `--` named as an argument given
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    err = capsys.readouterr().err
    usage = " ".join(["edge-rap", *argv[:2 if argv[0] == "models" else 1]])
    assert refused.value.code == 2 and err.startswith(f"usage: {usage} [")
    assert err.count("error") == 1 and f"{usage}: error: {said}" in err


@pytest.mark.parametrize("argv, said", [
    (["forget", "-rf"], "the following arguments are required: name (-rf is read as an option: a name or file that "
                        "begins with '-' goes after `--`, `edge-rap forget -- -rf`)"),
    (["rename", "-rf", "x"], "required: new (-rf is read as an option: a name or file that begins with '-' goes "
                             "after `--`, `edge-rap rename -- -rf ...`)"),
    (["remember", "-rf", "a.jpg"], "required: IMAGE (-rf is read as an option"),
    (["recognize", "-frame.jpg"], "required: IMAGE (-frame.jpg is read as an option"),
    # the operands before it kept, the options given after it put before `--` (`rename -- -rf` of `rename bo -rf`, and
    # `edit -- -bo ...` of `edit -bo --description x`, whose --description was then a stray argument)
    (["rename", "bo", "-rf"], "`edge-rap rename -- bo -rf`)"),
    (["add-views", "--box", "1,2,3,4", "bo", "-frame.jpg"], "`edge-rap add-views --box 1,2,3,4 -- bo -frame.jpg`)"),
    (["edit", "-bo", "--description", "a red cup"], "`edge-rap edit --description 'a red cup' -- -bo`)"),
    (["remember", "--json", "-bo", "a.jpg", "--category=cat"],
     "`edge-rap remember --json --category=cat -- -bo ...`)")])
def test_an_operand_that_begins_with_a_dash_is_said_to_go_after_a_double_dash(capsys, argv, said):
    # `forget -rf` of a concept named -rf said "the following arguments are required: name", as if none were given
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("error") == 1
    assert f"edge-rap {argv[0]}: error: " in err and said in err, err

@pytest.mark.parametrize("argv, operands", [
    (["rename", "bo", "-rf"], {"old": "bo", "new": "-rf"}),
    (["add-views", "--box", "1,2,3,4", "bo", "-frame.jpg"], {"name": "bo", "images": ["-frame.jpg"]}),
    (["edit", "-bo", "--description", "a red cup"], {"name": "-bo", "description": "a red cup"}),
    (["remember", "-v", "bo", "--category=cat", "-b.jpg"], {"name": "bo", "images": ["-b.jpg"], "category": "cat"}),
    # the options before the command kept: `--memory /mnt/m forget -rf` was told `edge-rap forget -- -rf`, which
    # forgets the default memory's <-rf>
    (["--memory", "/mnt/m", "forget", "--json", "-rf"], {"name": "-rf", "json": True}),
    (["-v", "--memory=/mnt/m", "rename", "bo", "-rf"], {"old": "bo", "new": "-rf"})])
def test_the_command_said_with_a_double_dash_is_the_one_meant(capsys, argv, operands):
    with pytest.raises(SystemExit):
        cli.main(argv)
    suggested = capsys.readouterr().err.rsplit("`", 2)[1]
    parsed = vars(cli.build_parser().parse_args(shlex.split(suggested)[1:]))
    assert {key: parsed[key] for key in operands} == operands, suggested
    assert ("/mnt/m" in suggested) == ("/mnt/m" in " ".join(argv)), suggested


@pytest.mark.parametrize("argv", [["concepts", "-x"], ["remember", "bo", "a.jpg", "-q"], ["forget", "--jsn"]])
def test_a_mistyped_option_is_not_said_to_be_an_operand(capsys, argv):
    # to a command that takes no operands, after them all, or of two dashes: a typo, not a name
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert "is read as an option" not in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["rename", "--", "y", "--"], ["add-views", "--", "y", "--"],
                                  ["remember", "--", "q", "--"]])
def test_a_second_double_dash_is_said_not_read_as_nothing(capsys, argv):
    # Python 3.11's argparse reads a second `--` as no argument: "concept name is empty", "every photo given is
    # already a view", "needs at least one image"; 3.12.10's as an argument: y renamed `--`, a photo `--` not found
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("error") == 1
    assert err.endswith(f"edge-rap {argv[0]}: error: `--` is given twice: a second after the first is read as no "
                        "argument at all by some Pythons, as an argument by others (give it once)\n"), err


@pytest.mark.parametrize("argv", [["--", "concepts"], ["--verbose", "--", "concepts", "--json"], ["--"],
                                  ["--memory", "concepts", "--", "concepts"], ["--memory", "--", "concepts"],
                                  ["--device", "cpu", "--embedder", "forget", "--", "forget", "bo"]])
def test_a_double_dash_before_the_command_says_where_it_goes(capsys, argv):
    # `edge-rap -- concepts` was argparse's "invalid choice: '--' (choose from 'remember', ...)"; so was
    # `--memory concepts -- concepts`, the folder's name taken for the command
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("error") == 1
    assert err.endswith("edge-rap: error: `--` goes after the command, before operands that begin with '-' "
                        "(`edge-rap rename -- -bo bo`): give the command first\n"), err


@pytest.mark.parametrize("argv", [["--version", "--"], ["--help", "--"], ["-h", "--", "concepts"]])
def test_help_or_version_before_a_double_dash_still_answers(capsys, argv):
    # the refusal of a `--` before the command came first: `edge-rap --version --` was "give the command first"
    with pytest.raises(SystemExit) as answered:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert (answered.value.code, err) == (0, "") and ("edge-rap " in out or "usage: edge-rap" in out), out


@pytest.mark.parametrize("argv", [["--memory", "--help", "--", "concepts"], ["--device", "-v", "--", "concepts"],
                                  ["--embedder", "--version", "--"]])
def test_an_option_whose_value_is_left_out_before_a_double_dash_is_said_so(capsys, argv):
    # an option's value is never one that begins with '-' (argparse's rule): `--memory --help -- concepts` was "`--`
    # goes after the command", where without the `--` it is "--memory: expected one argument"
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("error") == 1
    assert err.endswith(f"edge-rap: error: argument {argv[0]}: expected one argument\n"), err


def test_a_double_dash_with_nothing_after_it_is_no_mistake(tmp_path, capsys):
    # `concepts -- "$@"` with no arguments was refused: "unrecognized arguments: --"
    assert cli.main(["concepts", "--memory", str(tmp_path), "--json", "--"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("command, default", [("eval", "a temporary one"), ("demo", "$EDGE_RAP_HOME/demo/memory"),
                                              ("concepts", "$EDGE_RAP_HOME or ~/.local/share/edge-rap")])
def test_memory_says_the_default_of_its_command(command, default):
    # eval's and demo's --memory said "default $EDGE_RAP_HOME": eval makes a temporary memory, demo its own
    from parsers import every_parser

    parser = dict(every_parser(cli.build_parser(), ("edge-rap",)))[("edge-rap", command)]
    (memory,) = [a for a in parser._actions if "--memory" in a.option_strings]
    assert f"default {default})" in memory.help


def test_a_stop_signal_that_lands_while_the_main_thread_holds_the_stop_events_lock_still_stops():
    """Python runs a signal handler in the main thread between two bytecodes: `serve` waits on its stop event
    there, and a handler that set the event itself, landing while that wait held the event's lock (not
    reentrant), waited for it for ever: a SIGTERM that never stopped the server. Run here as the signal machinery
    would, in the thread that holds the lock (another thread, so that a handler that hangs fails the test)."""
    import signal
    import threading

    from edge_rap.cli import _stop_on_signals

    with _stop_on_signals() as stop:
        handler = signal.getsignal(signal.SIGTERM)

        def interrupted_inside_the_wait() -> None:
            with stop._cond:
                handler(signal.SIGTERM, None)

        thread = threading.Thread(target=interrupted_inside_the_wait, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "the handler waits for the lock its own thread holds"
        assert stop.wait(10)


def test_run_in_process_gives_the_signals_back_when_it_ends(run, photos):
    """run (and serve) set SIGINT, SIGTERM and SIGHUP to stop them cleanly; a caller of main() in the same
    process (the tests, a script) then had a Ctrl-C that only set an event nobody waited for."""
    import signal

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    run("remember", "bo", scene_file(photos / "bo", 1))
    rc, _, err = run("run", "--source", photos / "bo", "--max-frames", "1", "--mute")
    assert rc == 0, err
    assert {s: signal.getsignal(s) for s in before} == before


def test_run_stopped_while_it_starts_stops_as_at_any_other_time(run, photos, stop_signal, monkeypatch):
    # Before: run's stop handlers came after its imports and checks (half a second): a SIGTERM then ended the process
    # unsaid, 143, where a stop a moment later is the summary's line and exit 0
    import signal

    from edge_rap import app

    check_embedder = app.check_embedder

    def stopped_meanwhile(*args, **kwargs):
        stop_signal(signal.SIGTERM)
        return check_embedder(*args, **kwargs)

    run("remember", "bo", scene_file(photos / "bo", 1))
    monkeypatch.setattr(app, "check_embedder", stopped_meanwhile)
    rc, out, err = run("run", "--source", photos / "bo", "--mute")
    assert (rc, err) == (0, "") and out.startswith("0 frames read, 0 recognised")


def test_sigterm_and_sighup_raise_as_ctrl_c_does_but_one_ignored_stays_ignored(stop_signal):
    # a command's Ctrl-C cleanup was passed by; under `nohup` a closed terminal must still not stop it
    import signal

    from edge_rap.generate.interrupts import Stopped, stops_as_ctrl_c

    for signum in (signal.SIGTERM, signal.SIGHUP):
        with pytest.raises(KeyboardInterrupt) as stopped, stops_as_ctrl_c():
            stop_signal(signum)
        assert isinstance(stopped.value, Stopped) and stopped.value.signum == signum
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with stops_as_ctrl_c():
        stop_signal(signal.SIGHUP)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def test_a_ctrl_c_ignored_when_a_command_starts_stays_ignored():
    # A job a script puts in the background (`edge-rap serve &`) starts with SIGINT ignored, as under nohup: a stop's
    # handlers and a hold leave it so, and the Ctrl-C sent meanwhile ends nothing. (The suite runs each test with
    # Python's Ctrl-C whatever it inherited, conftest's `ctrl_c_raises`: this is set here, not found.)
    import signal

    from edge_rap import cli
    from edge_rap.generate.interrupts import interrupt_waiting, interrupts_held

    found = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with cli._stop_on_signals() as stop, interrupts_held():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
            assert not interrupt_waiting()
        assert not stop.wait(0.2) and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, found)


def test_a_held_signal_reaches_the_holds_wakeup_pipe_as_it_arrives():
    # llama.cpp evaluating a prompt on the main thread (`ask`) runs no Python: the held signal's Python handler waited
    # for the batch's end (seconds), and the VLM's watcher, on another thread, saw nothing. Python's C-level handler
    # writes the signal's number to the hold's wakeup pipe as it arrives; the wakeup fd the hold found comes back.
    import signal
    import socket
    import threading

    from edge_rap.generate import interrupts

    found, _ = socket.socketpair()
    found.setblocking(False)
    before = signal.set_wakeup_fd(found.fileno())
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as a fresh process has it
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.interrupts_held():
            assert not interrupts._arrivals.came()
            signal.pthread_kill(threading.main_thread().ident, signal.SIGWINCH)  # (no Python handler: not written)
            assert not interrupts._arrivals.came()
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            assert interrupts._arrivals.came() and interrupts.interrupt_waiting()
        assert interrupts._arrivals.pipe is None and not interrupts.interrupt_waiting()
    finally:
        signal.signal(signal.SIGINT, handler)
        assert signal.set_wakeup_fd(before) == found.fileno()


@pytest.mark.parametrize("raised_at", [1, 2])  # swapping its handler in; putting it back
def test_a_ctrl_c_raised_as_a_hold_begins_or_ends_leaves_nothing_of_the_hold_behind(monkeypatch, raised_at):
    # a Ctrl-C's handler runs between any two bytecodes (and signal.signal runs a pending one before it swaps): raised
    # as the hold swapped its handlers in or back, it left the hold's pipe as the process's wakeup fd and open, so no
    # later hold was the outermost, and every prompt after saw the byte it held as a signal arriving, and was cut; and
    # a handler not yet put back (signal.signal swaps nothing where a pending one raises) noted its signal for ever
    import signal
    import socket

    from edge_rap.generate import interrupts

    found, _ = socket.socketpair()
    found.setblocking(False)
    before = signal.set_wakeup_fd(found.fileno())
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    swap, calls = signal.signal, []

    def ctrl_c_at_a_swap(sig, new):
        calls.append(sig)
        if len(calls) == raised_at:  # (swapping nothing, as signal.signal where a pending handler raises)
            raise KeyboardInterrupt
        return swap(sig, new)

    monkeypatch.setattr(signal, "signal", ctrl_c_at_a_swap)
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.interrupts_held():
            pass
        assert interrupts._arrivals.pipe is None
        assert signal.set_wakeup_fd(found.fileno()) == found.fileno()  # (the hold's no more)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # (not the hold's, noting it for ever)
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGINT, handler)
        signal.set_wakeup_fd(before)
        interrupts._arrivals.close()  # (a failure above leaves no pipe to the tests after)


def test_a_ctrl_c_as_the_hold_sets_its_wakeup_fd_is_held_and_the_fd_it_found_comes_back(monkeypatch):
    # Python runs a signal's handler as soon as the call it came in returns: a Ctrl-C's KeyboardInterrupt there, as the
    # hold set its pipe as the wakeup fd, lost the fd it replaced, and left the hold's, closed, as the process's
    import signal
    import socket

    from edge_rap.generate import interrupts

    found, _ = socket.socketpair()
    found.setblocking(False)
    before = signal.set_wakeup_fd(found.fileno())
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    set_wakeup_fd, calls = signal.set_wakeup_fd, []

    def ctrl_c_as_it_first_returns(fd, **kwargs):
        replaced = set_wakeup_fd(fd, **kwargs)
        calls.append(fd)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)
        return replaced

    monkeypatch.setattr(signal, "set_wakeup_fd", ctrl_c_as_it_first_returns)
    body = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.interrupts_held():
            body.append(interrupts.interrupt_waiting())
        assert body == [True]  # held, and raised as the hold ended
        assert interrupts._arrivals.pipe is None
        assert signal.set_wakeup_fd(found.fileno()) == found.fileno()
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGINT, handler)
        signal.set_wakeup_fd(before)
        interrupts._arrivals.close()  # (a failure above leaves no pipe to the tests after)


def test_a_sighup_from_a_closed_terminal_ends_the_command_with_129_not_a_traceback(settings, monkeypatch,
                                                                                   stop_signal):
    # the terminal that closed took stderr with it: "stopped by SIGHUP" failed with EIO, a traceback into nowhere
    import io
    import signal

    class ClosedTerminal(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(cli, "cmd_concepts", lambda args: stop_signal(signal.SIGHUP))
    monkeypatch.setattr(sys, "stderr", ClosedTerminal())
    assert cli.main(["concepts", "--memory", str(settings.memory)]) == 129


class Terminal:
    """stdout and stderr on a terminal that closes (an ssh session ends): its writes then fail with EIO, as a hung-up
    tty's do. `hang_up` closes it; `on_first_word`, called after the first write, is where a test closes it."""

    def __init__(self, on_first_word=lambda terminal: None):
        import os
        import weakref

        self.text, self.hung_up, self.on_first_word = "", False, on_first_word
        self._fd = os.open(os.devnull, os.O_WRONLY)  # (what the CLI points at /dev/null once it cannot write)
        weakref.finalize(self, os.close, self._fd)

    def fileno(self) -> int:
        return self._fd

    def hang_up(self) -> None:
        self.hung_up = True

    def write(self, text: str) -> int:
        import errno

        if self.hung_up:
            raise OSError(errno.EIO, "Input/output error")
        self.text += text
        first, self.on_first_word = self.on_first_word, lambda terminal: None
        first(self)
        return len(text)

    def flush(self) -> None:
        pass


def ask_streaming_on(terminal: Terminal, monkeypatch, settings, tiny) -> int:
    """`ask --stream` with the tiny VLM, its output on `terminal`; <bo> remembered first."""
    if not settings.memory.exists():
        assert cli.main(["remember", "bo", str(scene_file(settings.memory.parent / "bo", 1)), "--memory",
                         str(settings.memory)]) == 0
    with monkeypatch.context() as patched:
        patched.setattr(sys, "stdout", terminal)
        patched.setattr(sys, "stderr", terminal)
        return cli.main(["ask", "Describe <bo>.", "--vlm", str(tiny[0]), "--stream", "--max-tokens", "8",
                         "--memory", str(settings.memory)])


@pytest.mark.parametrize("during", ["a word", "the model's work"])
def test_ask_stream_whose_terminal_closes_is_stopped_by_its_sighup(settings, monkeypatch, stop_signal, tiny, during):
    # Before: exit 1 or 2. The SIGHUP stopped the answer, then the newline that ends the streamed words failed on the
    # closed terminal (EIO) and "cannot write the output" took the stop's place (and failed too: a traceback).
    import signal

    from edge_rap.generate import vlm as vlm_module

    def closed() -> None:
        terminal.hang_up()
        stop_signal(signal.SIGHUP)

    def after_the_first_word(terminal: Terminal) -> None:
        if during == "a word":
            closed()
        else:  # held while llama.cpp works, and raised when its decode returns
            monkeypatch.setattr(vlm_module, "progress", closed)

    terminal = Terminal(after_the_first_word)
    assert ask_streaming_on(terminal, monkeypatch, settings, tiny) == 129
    assert terminal.text  # the first word


@pytest.mark.parametrize("then", ["SIGHUP", None, "Ctrl-C"])
def test_ask_stream_that_cannot_write_to_its_terminal_waits_for_the_sighup_of_its_closing(
        settings, monkeypatch, stop_signal, tiny, then):
    # A closed terminal fails writes at once; its SIGHUP reaches a command run from a shell when the shell, which
    # the kernel sent it to, passes it on: an EIO first is most likely a hang-up, and waits a moment for it. A
    # Ctrl-C pressed in that moment ended it with a traceback.
    import signal
    import time

    waited = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        if then == "SIGHUP" and terminal.hung_up:
            stop_signal(signal.SIGHUP)
        elif then == "Ctrl-C" and terminal.hung_up:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    terminal = Terminal(Terminal.hang_up)
    assert ask_streaming_on(terminal, monkeypatch, settings, tiny) == {"SIGHUP": 129, None: 2, "Ctrl-C": 130}[then]
    assert waited == [cli.HANGUP_WAIT_S]
    terminal.hung_up = False  # (what it would have said, on a terminal still open)
    assert ask_streaming_on(terminal, monkeypatch, settings, tiny) == 0


def _help_of(command: str, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse's wrapping undone


def test_each_key_reindex_and_doctor_print_with_json_is_named_in_their_help(run, photos, capsys):
    run("remember", "bo", scene_file(photos, 1))
    for command, nested in (("reindex", ()), ("doctor", ("memory",))):
        rc, out, _ = run(command, "--json")
        printed = json.loads(out)
        keys = list(printed) + [key for part in nested for key in printed[part]]
        said = _help_of(command, capsys)
        assert [key for key in keys if key not in said] == [], command


def test_version_is_printed_alone_for_a_script_or_a_bug_report(capsys):
    from edge_rap import __version__

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"edge-rap {__version__}\n"


def test_no_option_is_reached_by_an_abbreviation_on_any_command(capsys):
    # argparse took `--vers` for --version, `recognize --det` for --detector, `ask --max` for --max-tokens: a script
    # written so changes meaning, or breaks as ambiguous, when an option with the same start is added.
    from parsers import abbreviations_taken, every_parser

    assert abbreviations_taken(every_parser(cli.build_parser(), ("edge-rap",))) == []
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        cli.main(["--vers"])
    assert refused.value.code == 2 and "edge-rap" not in capsys.readouterr().out  # not the version, exit 0
    with pytest.raises(SystemExit):
        cli.main(["concepts", "--js"])
    assert "edge-rap concepts: error: unrecognized arguments: --js" in capsys.readouterr().err


def test_every_tools_parser_takes_options_by_their_whole_names_only():
    # the same rule for tools/*.py: `bench_frame.py --vers` was --versus, `bench_localize.py --seed 1` --seeds,
    # so a command in docs/BENCHMARKS.md could change meaning when the tool gained an option.
    import ast

    tools = Path(__file__).resolve().parent.parent / "tools"
    parsers = [(script.name, call) for script in sorted(tools.glob("*.py"))
               for call in ast.walk(ast.parse(script.read_text(encoding="utf-8")))
               if isinstance(call, ast.Call) and getattr(call.func, "attr", "") in ("ArgumentParser", "add_parser")]
    abbreviating = [f"{name}:{call.lineno}" for name, call in parsers if not any(
        k.arg == "allow_abbrev" and isinstance(k.value, ast.Constant) and k.value.value is False
        for k in call.keywords)]
    assert len(parsers) > 20 and abbreviating == []


def test_recognize_shows_an_image_whose_name_holds_a_newline_or_escape_on_its_one_line(run, photos):
    # the error line of such a name was quoted, the answer's printed raw: "new\nline.jpg" split a line a script
    # reads one image from, and a name's "\x1b[2J" reached the terminal
    run("remember", "bo", scene_file(photos, 1))
    odd = [photos / "new\nline.png", photos / "esc\x1b[2J.png"]
    for path in odd:
        path.write_bytes((photos / "scene1.png").read_bytes())
    rc, out, _ = run("recognize", *odd, "--draw", photos / "drawn")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 2 and "\x1b" not in out
    assert lines[0].startswith(repr(str(odd[0])) + ": <bo>") and lines[1].startswith(repr(str(odd[1])) + ": <bo>")


def test_an_image_given_as_dash_is_said_to_be_no_stdin(run, photos, monkeypatch):
    # `recognize -` (a Unix habit for stdin) said only "-: no such file"; a file named "-" is still read
    run("remember", "bo", scene_file(photos, 1))
    monkeypatch.chdir(photos)
    rc, out, err = run("recognize", "-")
    assert rc == 2 and out == "" and err == ("edge-rap: -: no such file (photos are read from files, not from stdin: "
                                             "give the photo's file)\n")
    (photos / "-").write_bytes((photos / "scene1.png").read_bytes())
    rc, out, _ = run("recognize", "-")
    assert rc == 0 and out.startswith("-: <bo>")


def test_recognize_writes_each_images_line_before_the_next_image_is_read(run, photos, settings, monkeypatch):
    # --json flushed each line, the text did not: into a pipe or a log, 500 photos' lines came at the end, after
    # every error line on stderr
    import io

    from edge_rap.household import Household

    run("remember", "bo", scene_file(photos, 1))
    second = save(photos / "second.png", scene(2))
    pipe = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", line_buffering=False)
    out_before_each = []
    recognize = Household.recognize

    def noting(self, image):
        out_before_each.append(pipe.buffer.getvalue().decode())
        return recognize(self, image)

    monkeypatch.setattr(Household, "recognize", noting)
    monkeypatch.setattr(sys, "stdout", pipe)
    for json_flag in ([], ["--json"]):
        out_before_each.clear()
        pipe.buffer.seek(0)
        pipe.buffer.truncate()
        assert cli.main(["recognize", *json_flag, str(photos / "scene1.png"), str(second),
                         "--memory", str(settings.memory)]) == 0
        assert out_before_each[0] == "" and out_before_each[1].count("\n") == 1 and "scene1.png" in out_before_each[1]


def test_json_output_of_a_name_that_is_not_utf8_is_text_any_json_parser_reads(run, photos, tmp_path):
    # a file name's byte 0xff (Python's "\udcff") was written as the lone surrogate "\udcff": jq and Go read it as
    # U+FFFD, losing which byte it was, and strict parsers refuse the line; it is the four characters \xff, in every
    # --json output that names a file (the image, its drawing, an error's text, backup's and export-rap's paths)
    run("remember", "bo", scene_file(photos, 1))
    odd = photos / os.fsdecode(b"bad\xff.png")
    odd.write_bytes((photos / "scene1.png").read_bytes())
    gone = photos / os.fsdecode(b"gone\xfe.png")
    sys.stderr.reconfigure(errors="backslashreplace")  # as a process's stderr is (pytest's capture is strict)
    rc, out, _ = run("recognize", "--json", odd, gone, "--draw", photos / os.fsdecode(b"drawn\xfd"))
    assert rc == 2
    outs = [out]
    shown = str(photos)
    found, missing = (json.loads(line) for line in out.splitlines())
    assert found["image"] == f"{shown}/bad\\xff.png" and found["concepts"][0]["name"] == "bo"
    assert found["drawing"] == f"{shown}/drawn\\xfd/bad\\xff.jpg"
    assert missing["image"] == f"{shown}/gone\\xfe.png" and missing["error"] == f"{shown}/gone\\xfe.png: no such file"
    for argv in (["backup", "--json", tmp_path / os.fsdecode(b"b\xfc.tar")],
                 ["export-rap", "--json", tmp_path / os.fsdecode(b"e\xfb")]):
        rc, out, err = run(*argv)
        assert rc == 0, err
        outs.append(out)
    assert json.loads(outs[1])["path"] == f"{tmp_path}/b\\xfc.tar"
    assert json.loads(outs[2])["database"] == f"{tmp_path}/e\\xfb/database.json"
    for out in outs:
        out.encode("utf-8")  # no lone surrogate, escaped or not
        assert "\\ud" not in out, out


def test_text_output_of_a_name_that_is_not_utf8_is_written_as_json_writes_it(run, photos, tmp_path):
    # --json wrote a file name's byte 0xff as \xff, while the text output quoted it as repr does, '\udcff', and
    # stderr's lines wrote \udcff too (its backslashreplace): a user saw two forms of one byte
    run("remember", "bo", scene_file(photos, 1))
    odd = photos / os.fsdecode(b"bad\xff.png")
    odd.write_bytes((photos / "scene1.png").read_bytes())
    rc, out, err = run("recognize", odd, photos / os.fsdecode(b"gone\xfe.png"))
    assert rc == 2
    assert out == f"'{photos}/bad\\xff.png': <bo> 1.00\n"
    assert err == f"edge-rap: {photos}/gone\\xfe.png: no such file\n"
    rc, _, err = run("run", "--source", tmp_path / os.fsdecode(b"door\xfd.mp4"))
    assert (rc, err) == (2, f"edge-rap: source '{tmp_path}/door\\xfd.mp4': no such file or folder\n")


BYTE = os.fsdecode(b"\xff")  # an argument's byte that is not UTF-8, as Python gives it


def argparse_on_a_letter_after_a_flag(letter: str) -> str:
    """What this Python's argparse says of `-vv` and a letter no option has, -v one that takes no value: 3.10 to
    3.12.1's "ignored explicit argument 'x'", 3.13's "unrecognized arguments: -x" (it reads `-x` as an option)."""
    import argparse

    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("-v", "--verbose", action="count")
    try:
        said = "unrecognized arguments: " + " ".join(parser.parse_known_args(["-vvQ"])[1])
    except argparse.ArgumentError as e:
        said = str(e)
    return said.replace("Q", letter)


@pytest.mark.parametrize("argv, said", [
    ([BYTE], "argument command: invalid choice: '\\xff' (choose from"),  # argparse's own errors
    (["models", BYTE], "invalid choice: '\\xff' (choose from 'list'"),
    (["events", "--limit", BYTE], "argument --limit: invalid integer value: '\\xff'"),
    (["events", f"--limit={BYTE}"], "argument --limit: invalid integer value: '\\xff'"),
    (["concepts", BYTE], "unrecognized arguments: \\xff"),
    (["concepts", f"--json={BYTE}"], "argument --json: ignored explicit argument '\\xff'"),
    (["concepts", f"-vv{BYTE}"], argparse_on_a_letter_after_a_flag("\\xff")),  # (taken apart)
    (["eval", "localize", "--frame-size", f"1x{BYTE}"], "expected WIDTHxHEIGHT such as 1280x960, not '1x\\xff'"),
    (["serve", "--port", BYTE], "--port: a port is 1 to 65535, not '\\xff'"),
    (["rename", f"bo{BYTE}", "mo"], "concept name 'bo\\xff' has a character that is not allowed: '\\xff'"),
    (["events", "--name", BYTE], "concept name '\\xff' has a character that is not allowed: '\\xff'"),
    (["remember", "bo", "p.png", "--category", f"caf{BYTE}"], "category 'caf\\xff' has a character that is not "
                                                               "allowed: '\\xff' (not UTF-8"),
    (["remember", "bo", "p.png", "--box", BYTE], "box '\\xff' is not x0,y0,x1,y1"),
    (["recognize", f"p\t{BYTE}.png"], "'p\\t\\xff.png': no such file"),  # (a control character: quoted)
    (["remember", "bo", f"p\t{BYTE}.png"], "'p\\t\\xff.png': no such file"),
    (["recognize", "p.png", "--embedder", BYTE], "model '\\xff' is not in the model cache"),
    (["concepts", "--device", BYTE], "device profile '\\xff' not found"),
    (["events", "--since", BYTE], "--since '\\xff': use 30s"),
    (["models", "pull", f"smolvlm{BYTE}"], "no model named 'smolvlm\\xff' in the registries; did you mean "),
    (["ask", "what is it", "--vlm", BYTE], "VLM '\\xff': not a .gguf file"),
    (["listen", "--asr", BYTE], "speech model '\\xff': not auto"),
    (["listen", "--wake", BYTE], "--wake '\\xff': no word to listen for"),
    (["pair", "--host", BYTE], "--host '\\xff': give a host name or address"),
])
def test_an_argument_not_utf8_is_quoted_in_its_error_as_json_writes_it(run, photos, capsys, argv, said):
    # argparse's own errors, a typed name's refusal and the model cache's quoted such a byte as repr does,
    # '\udcff', where every other message (and --json) writes '\xff': a user saw two forms of one byte
    run("remember", "mo", scene_file(photos, 2))
    sys.stderr.reconfigure(errors="backslashreplace")  # as a process's stderr is until main sets it
    try:
        rc, out, err = run(*[scene_file(photos, 1) if a == "p.png" else a for a in argv])
    except SystemExit as e:  # argparse's
        rc, (out, err) = e.code, capsys.readouterr()
    assert (rc, out) == (2, "") and said in err and "\\udc" not in err, err
    assert run("concepts")[1] == "<mo> 1 view\n"


@pytest.mark.parametrize("argv", [
    ["--memory=/m", "remember", f"bo{BYTE}", "a.png", f"b{BYTE}.png", "--description", "x", "--category=cat"],
    ["run", "--source", "a", f"--source=b=c{BYTE}", "--source", BYTE, "--duration=3", "--wake=hey", "-v"],
    ["models", f"--memory={BYTE}", "pull", f"--embedder={BYTE}", "smolvlm2-500m"],
    ["ask", f"--image={BYTE}", "--max-tokens=5"], ["ask"], ["listen"], ["events", "--limit=3"],
    ["eval", "retrieval", f"--dataset={BYTE}", "--frame-size=64x64"],
    ["recognize", "--", "-a.png", BYTE], ["serve", "--host=0.0.0.0", "--port=80"],
])
def test_the_values_parsed_are_plain_strings_not_the_parser_s_quoting_ones(argv):
    # the parser hands argparse each value as a str that quotes itself in argparse's errors (cli._Given, a value
    # after `=` and the letters after a flag too): what it parses must be plain str, to be written, compared and
    # pickled as any other
    from edge_rap.cli import _CommandParser, build_parser

    _CommandParser.typed = argv
    args, unknown = build_parser().parse_known_args(argv)
    values = [v for value in [*vars(args).values(), unknown] for v in (value if isinstance(value, list) else [value])]
    assert [v for v in values if isinstance(v, str) and type(v) is not str] == [], values


@pytest.mark.parametrize("shape", [
    lambda *reading: reading[:2] + reading[3:],  # (action, option string, explicit argument): 3.10.13, 3.11.7, 3.12.1
    lambda *reading: reading,  # with its separator: 3.13.0 (the ones here)
    lambda *reading: [reading],  # a list of them, one for each option it may be: 3.12.7 and 3.13.1 on
], ids=["3-tuple", "4-tuple", "list"])
def test_an_option_s_explicit_argument_is_quoted_in_whichever_shape_argparse_reads_it(monkeypatch, shape):
    # argparse's private _parse_optional returned a list of tuples from Python 3.12.7 and 3.13.1, which the
    # parser's wrapper passed on as it was: `edge-rap -vv$'\xff'` said its byte '\udcff' there
    import argparse

    parser = cli._QuotingParser()
    verbose = parser.add_argument("-v", action="count")
    monkeypatch.setattr(argparse.ArgumentParser, "_parse_optional",
                        lambda self, arg: shape(verbose, arg[:2], "", arg[2:] or None))
    reading = parser._parse_optional(f"-vv{BYTE}")
    assert reading == shape(verbose, "-v", "", f"v{BYTE}")  # the same reading, its explicit argument quoting
    explicit = (reading[0] if isinstance(reading, list) else reading)[-1]
    assert repr(explicit) == "'v\\xff'" and repr(explicit[1:]) == "'\\xff'"
    assert parser._parse_optional("-v") == shape(verbose, "-v", "", None)  # (none given: none made)


def test_a_choice_not_utf8_is_quoted_whichever_way_argparse_formats_it(monkeypatch):
    # argparse says a refused choice as `str(value)`, its choices unquoted, from Python 3.12.8 and 3.13.1: the
    # parser's quoting str was a plain one there, and `edge-rap $'\xff'` said '\udcff' (met on 3.12.10)
    import argparse

    def newer(self, action, value):  # (theirs, as it reads there)
        if action.choices is not None and value not in action.choices:
            args = {"value": str(value), "choices": ", ".join(map(str, action.choices))}
            raise argparse.ArgumentError(action, "invalid choice: %(value)r (choose from %(choices)s)" % args)

    monkeypatch.setattr(argparse.ArgumentParser, "_check_value", newer)
    parser = cli._QuotingParser(exit_on_error=False)
    parser.add_argument("kind", choices=["list", "pull"])
    with pytest.raises(argparse.ArgumentError) as refused:
        parser.parse_args([f"li{BYTE}"])
    assert str(refused.value) == "argument kind: invalid choice: 'li\\xff' (choose from 'list', 'pull')"
    assert parser.parse_args(["pull"]).kind == "pull"


def test_a_name_is_shown_quoted_with_its_bytes_as_json_writes_them():
    from edge_rap.output import quoted, shown

    assert shown("bo") == "bo" and shown(os.fsdecode(b"b\xff\n")) == "'b\\xff\\n'"
    assert quoted("a\\udcff") == repr("a\\udcff")  # a name's own backslash, not a byte: as repr writes it
    assert quoted(3) == "3"
