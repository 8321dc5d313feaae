"""tools/companion.py against a live server: list, add, rename, forget, events, and sync of a RAP database.json or a
folder of concept folders, idempotent (a second sync adds nothing; a changed description is patched), missing
images named and the rest imported, unreachable devices one line after retries."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from scenes import save, scene
from serve_support import fake_settings, live_server

from edge_rap.types import Event

TOOLS = Path(__file__).resolve().parents[1] / "tools"


@pytest.fixture(scope="module")
def companion():
    spec = importlib.util.spec_from_file_location("companion", TOOLS / "companion.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["companion"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["companion"]


@pytest.fixture
def live(tmp_path):
    with live_server(fake_settings(tmp_path)) as server:
        yield server


def _call(companion, live, capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = companion.main(["--url", live.url, "--token", live.token, *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def _save(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(path, scene(seed))


def _rap_database(folder: Path) -> Path:
    images = folder / "database"
    _save(images / "bo.png", 1)
    _save(images / "bo-2.png", 2)
    _save(images / "mug.png", 3)
    db = {"concept_dict": {
        "<bo>": {"name": "bo", "image": "./database/bo.png", "extra_images": ["./database/bo-2.png",
                                                                            "./database/bo-3.png"],
                 "info": "our dog", "category": "dog"},
        "<mug>": {"name": "mug", "image": "./database/mug.png", "info": " the blue  mug\n", "category": "cup"},
        "<ghost>": {"name": "ghost", "image": "./database/ghost.png", "info": "gone", "category": "toy"}},
        "path_to_concept": {}}
    path = folder / "database.json"
    path.write_text(json.dumps(db))
    return path


def test_json_is_taken_after_the_command_too(companion, live, capsys, tmp_path):
    """`companion.py list --json`, as edge-rap's own commands take it, was "unrecognized arguments: --json"."""
    assert _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 1), "--json")[0] == 0
    for argv in (["list", "--json"], ["--json", "list"]):
        rc, out, err = _call(companion, live, capsys, *argv)
        assert rc == 0 and [c["name"] for c in json.loads(out)] == ["bo"], err
    rc, out, _ = _call(companion, live, capsys, "list")
    assert rc == 0 and out.startswith("<bo>")


def test_a_reader_that_leaves_early_ends_it_quietly(companion, live, capsys, tmp_path):
    # `companion.py list | head -1` ended in a BrokenPipeError traceback
    import os
    import subprocess

    assert _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 1))[0] == 0
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        done = subprocess.run([sys.executable, str(TOOLS / "companion.py"), "--url", live.url, "--token", live.token,
                               "list"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""


def test_sync_a_rap_database_is_idempotent_and_names_what_is_missing(companion, live, capsys, tmp_path):
    database = _rap_database(tmp_path / "rap")
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", database)
    report = json.loads(out)
    assert rc == 1 and sorted(report["added"]) == ["bo", "mug"] and report["photos_added"] == 3  # as import-rap
    assert sorted(report["missing"]) == ["bo (bo-3.png)", "ghost (ghost.png)"]
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", database)
    again = json.loads(out)
    assert (again["added"], again["patched"], again["photos_added"]) == ([], [], 0)
    db = json.loads(database.read_text())
    db["concept_dict"]["<mug>"]["info"] = "the red mug"
    database.write_text(json.dumps(db))
    _save(database.parent / "database" / "bo-3.png", 4)  # the missing photo turns up
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", database)
    third = json.loads(out)
    assert (third["added"], third["patched"], third["photos_added"]) == ([], ["mug"], 1)
    with live.client() as c:
        listed = {x["name"]: x for x in c.get("/api/concepts").json()}
    assert (listed["bo"]["views"], listed["mug"]["description"]) == (3, "the red mug")


def test_a_rap_databases_folder_is_refused_naming_its_database_json(companion, tmp_path):
    # given for its database.json, its photos' folder was synced as one concept, `database`, with every photo
    database = _rap_database(tmp_path / "rap")
    with pytest.raises(companion.CompanionError, match=f"a RAP database, not a folder per concept \\(sync {database}"):
        companion.read_entries(database.parent)
    db = json.loads(database.read_text())
    database.write_text(json.dumps({**db, "concept_dict": {"<mug>": db["concept_dict"]["<mug>"]}}))
    with pytest.raises(companion.CompanionError, match="a RAP database"):  # a single concept: synced as `database`
        companion.read_entries(database.parent)
    database.write_text(json.dumps({"labels": []}))  # another file of that name: the folder is a concept per folder
    assert [e.name for e in companion.read_entries(database.parent)] == ["database"]
    (database.parent / "database").rename(database.parent / "mug")  # RAP's file of a folder per concept, too
    database.write_text(json.dumps({"concept_dict": {"<mug>": {"name": "mug", "image": "mug/mug.png"}}}))
    assert [e.name for e in companion.read_entries(database.parent)] == ["mug"]
    database.write_text(json.dumps({"concept_dict": {"<Mug>": {"image": "mug/mug.png"}}}))  # its name in any case
    assert [e.name for e in companion.read_entries(database.parent)] == ["mug"]


def test_a_database_saved_with_a_byte_order_mark_is_read(companion, tmp_path):
    database = _rap_database(tmp_path / "rap")  # as Windows Notepad (before 2019) saves it
    database.write_bytes(b"\xef\xbb\xbf" + database.read_bytes())
    assert sorted(e.name for e in companion.read_entries(database)) == ["bo", "ghost", "mug"]


def test_sync_a_folder_of_concept_folders(companion, live, capsys, tmp_path):
    root = tmp_path / "concepts"
    _save(root / "bo" / "a.png", 5)
    _save(root / "bo" / "b.jpg", 6)
    (root / "bo" / "description.txt").write_text("our dog\n")
    _save(root / "cat" / "a.png", 7)
    (root / "empty").mkdir()
    rc, out, _ = _call(companion, live, capsys, "sync", root)
    assert rc == 0 and "added 2 concepts, patched 0, sent 3 photos" in out
    rc, out, _ = _call(companion, live, capsys, "sync", root)
    assert "added 0 concepts, patched 0, sent 0 photos" in out


def test_sync_prints_folder_names_on_their_line_without_terminal_codes(companion, live, capsys, tmp_path):
    # a folder named "bo\x1b[2J" cleared the terminal as sync said it failed, and "new\nline" split its line
    root = tmp_path / "concepts"
    _save(root / "good" / "a.png", 5)
    _save(root / "bo\x1b[2J" / "a.png", 6)
    _save(root / "new\nline" / "a.png", 7)
    rc, out, err = _call(companion, live, capsys, "sync", root)
    lines = err.splitlines()  # what was not sent on stderr, as import-rap says it; stdout what was done
    assert rc == 1 and out == "added 1 concept, patched 0, sent 1 photo\n"
    assert len(lines) == 2 and all(line.startswith("failed <'") for line in lines) and "\x1b" not in err


def test_a_concept_another_client_made_during_the_sync_is_synced_not_failed(companion, live, capsys, tmp_path,
                                                                            monkeypatch):
    """Two syncs of one folder at once: each listed the device before the other added a concept, and each named
    the other's concepts under `failed` (409, the name taken), exit status 1, their photos and text not sent."""
    root = tmp_path / "concepts"
    _save(root / "bo" / "a.png", 1)
    _save(root / "bo" / "b.png", 2)
    (root / "bo" / "description.txt").write_text("our dog\n")
    with live.client() as c:  # the other sync's: bo with its first photo
        files = [("photo", ("a.png", (root / "bo" / "a.png").read_bytes(), "image/png"))]
        assert c.post("/api/concepts", data={"name": "Bo"}, files=files).status_code == 201
    monkeypatch.setattr(companion.Device, "concepts", lambda self: {})  # listed before it was made
    rc, out, err = _call(companion, live, capsys, "sync", root)
    assert rc == 0 and "failed" not in out + err, out + err
    with live.client() as c:
        (bo,) = c.get("/api/concepts").json()
    assert (bo["name"], bo["description"], bo["views"]) == ("Bo", "our dog", 2)


def test_sync_keeps_the_devices_text_where_a_folder_has_no_text_file(companion, live, capsys, tmp_path):
    # A description typed on the phone is not wiped by a folder of photos that says nothing about it.
    with live.client() as c:
        files = [("photo", ("p.png", _save(tmp_path / "bo.png", 1).read_bytes(), "image/png"))]
        data = {"name": "bo", "description": "our dog", "category": "dog"}
        assert c.post("/api/concepts", data=data, files=files).status_code == 201
    _save(tmp_path / "concepts" / "bo" / "new.png", 2)
    rc, out, _ = _call(companion, live, capsys, "sync", tmp_path / "concepts")
    assert rc == 0 and "added 0 concepts, patched 0, sent 1 photo" in out
    (tmp_path / "concepts" / "bo" / "category.txt").write_text("shiba\n")  # a file there is what it says
    rc, out, _ = _call(companion, live, capsys, "sync", tmp_path / "concepts")
    assert rc == 0 and "patched 1" in out
    with live.client() as c:
        (bo,) = c.get("/api/concepts").json()
    assert (bo["description"], bo["category"], bo["views"]) == ("our dog", "shiba", 2)


def test_sync_reports_a_concept_it_cannot_read_as_failed_and_syncs_the_others(companion, live, capsys, tmp_path):
    # A description that is not UTF-8, an image field that is not a path: that concept fails, by name.
    root = tmp_path / "concepts"
    _save(root / "cat" / "a.png", 5)
    _save(root / "rc_car" / "a.png", 6)
    (root / "rc_car" / "description.txt").write_bytes(b"a car \xff")
    rc, out, err = _call(companion, live, capsys, "--json", "sync", root)
    report = json.loads(out)
    assert rc == 1 and report["added"] == ["cat"] and list(report["failed"]) == ["rc_car"], err
    assert report["failed"]["rc_car"] == "its description.txt is not UTF-8 text"
    database = _rap_database(tmp_path / "rap")
    db = json.loads(database.read_text())
    db["concept_dict"]["<weird>"] = {"image": 7}
    db["concept_dict"]["<odd>"] = {"image": "./database/mug.png", "extra_images": {"a": 1}}
    database.write_text(json.dumps(db))
    rc, out, err = _call(companion, live, capsys, "sync", database)
    assert rc == 1 and "added 2 concepts" in out and "Traceback" not in err
    assert "failed <weird>: its image is not a path or a list of paths" in err
    assert "failed <odd>: its extra_images is not a path or a list of paths" in err


def test_a_concept_forgotten_between_its_409_and_its_reading_is_added_again(companion, live, capsys, tmp_path,
                                                                          monkeypatch):
    # another client made <Bo> after the list was read, then forgot it before the sync read it: "failed <bo>:
    # GET /api/concepts/bo: 404", exit status 1, though it is in the folder (a rerun added it)
    _save(tmp_path / "concepts" / "bo" / "a.png", 1)
    (tmp_path / "concepts" / "bo" / "description.txt").write_text("our dog\n")
    with live.client() as c:
        assert c.post("/api/concepts", data={"name": "Bo"},
                      files=[("photo", ("b.png", _save(tmp_path / "b.png", 2).read_bytes(), "image/png"))]
                      ).status_code == 201
    monkeypatch.setattr(companion.Device, "concepts", lambda self: {})  # listed before it was made
    answer = companion.Device.answer

    def forgotten_first(self, method, path, **kwargs):
        if method == "GET" and path == "/api/concepts/bo":
            with live.client() as c:
                assert c.delete("/api/concepts/Bo").status_code in (200, 204)
        return answer(self, method, path, **kwargs)

    monkeypatch.setattr(companion.Device, "answer", forgotten_first)
    rc, out, err = _call(companion, live, capsys, "--json", "sync", tmp_path / "concepts")
    assert (rc, json.loads(out)["added"]) == (0, ["bo"]), out + err
    monkeypatch.setattr(companion.Device, "answer", answer)
    with live.client() as c:
        (bo,) = c.get("/api/concepts").json()
    assert (bo["name"], bo["description"], bo["views"]) == ("bo", "our dog", 1)


class DeviceHolding:
    """A device whose memory, made before names said alike were one, holds `concepts` (name -> description and
    the photo files it has); records what a sync asks of it."""

    def __init__(self, companion, concepts: dict[str, tuple[str, list[Path]]]):
        self.calls = []
        self.held = {n: {"name": n, "description": d, "category": "",
                         "photos": [{"sha256": companion._sha256(p)} for p in photos]}
                     for n, (d, photos) in concepts.items()}

    def concepts(self):
        return dict(self.held)

    def patch(self, name, **change):
        self.calls.append(("patch", name))

    def add_photos(self, name, photos):
        self.calls.append(("add_photos", name))
        return self.held[name]

    def add(self, entry):
        self.calls.append(("add", entry.name))
        return {"name": entry.name}


def test_what_the_device_sends_is_printed_on_its_line_without_terminal_codes(companion, capsys, monkeypatch):
    # A name, description, camera or line from an older memory (or a device that is not ours) holding "\x1b[2J"
    # cleared the laptop's terminal as `list` or `events` printed it; only `sync` escaped what it printed.
    odd = "bo\x1b[2J"
    device = DeviceHolding(companion, {odd: ("our\x1b]0;owned\x07 dog", [])})
    device.held[odd].update(category="dog\r", views=1)
    device.answer = lambda *a, **k: [{"wall": 0.0, "camera": "door\x1b[31m", "name": odd, "type": "arrived",
                                      "said": "I can see <bo\x1b[2J>.\nfake line"}]
    monkeypatch.setattr(companion, "Device", lambda *a, **k: device)
    for command in ("list", "events"):
        capsys.readouterr()
        assert companion.main(["--url", "http://device.invalid", "--token", "t", command]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out and out.count("\n") == 1, command
        assert "bo\\x1b[2J" in out  # shown escaped, not dropped


def test_a_terminal_that_cannot_encode_a_name_shows_it_escaped(companion, monkeypatch):
    # a console not in UTF-8 (a Windows one's pipe, cp1252; PYTHONIOENCODING=ascii): a name's emoji in `list` or
    # `events` was a UnicodeEncodeError's traceback, as edge-rap's own commands were
    import io

    device = DeviceHolding(companion, {"Zo\u00eb \U0001f431": ("", [])})
    device.held["Zo\u00eb \U0001f431"].update(category="", views=1)
    device.answer = lambda *a, **k: [{"wall": 0.0, "camera": "door", "name": "Zo\u00eb \U0001f431", "type": "left"}]
    monkeypatch.setattr(companion, "Device", lambda *a, **k: device)
    for command, shown in (("list", "<Zo\\xeb \\U0001f431> "), ("events", "[door] <Zo\\xeb \\U0001f431> left\n")):
        terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        monkeypatch.setattr(sys, "stdout", terminal)
        assert companion.main(["--url", "http://device.invalid", "--token", "t", command]) == 0
        terminal.flush()
        assert shown.encode() in terminal.buffer.getvalue(), command


def test_sync_takes_the_devices_very_name_before_one_said_alike(companion, tmp_path):
    pot, car = _save(tmp_path / "tea pot" / "a.png", 1), _save(tmp_path / "teapot" / "a.png", 2)
    (tmp_path / "tea pot" / "description.txt").write_text("the pot")
    (tmp_path / "teapot" / "description.txt").write_text("the car")
    device = DeviceHolding(companion, {"tea pot": ("the pot", [pot]), "teapot": ("the car", [car])})
    entries = [companion._folder_entry(tmp_path / n) for n in ("tea pot", "teapot")]
    assert companion.sync(device, entries).failed == {} and device.calls == []  # in sync: nothing to send
    (tmp_path / "Tea-Pot").mkdir()
    report = companion.sync(device, [companion._folder_entry(tmp_path / "Tea-Pot")])
    assert "the device holds 'tea pot' and 'teapot'" in report.failed["Tea-Pot"] and device.calls == []



def test_sync_compares_names_as_the_device_does(companion, tmp_path):
    # a laptop's folder "Zoë's teapot/" is the "Zoë’s teapot" a phone remembered: sync added it anew, which the
    # device refused as the name it holds, and the sync failed; so did a folder written without an emoji's selector
    from edge_rap.memory.store import APOSTROPHES, name_key

    for name in ("Zoë\u2019s teapot", "zoe\u0301\u2018s_Tea-Pot", "Mochi \u2764\ufe0f", "👨\u200d👩\u200d👧",
                 "İstanbul", "ｂｏ", "Zoë\u00b4s teapot", "\u0149", *(f"Zoë{chr(a)}s teapot" for a in APOSTROPHES)):
        assert companion._key(name) == name_key(name), name  # every apostrophe the device takes for "'"
    assert companion._key("Zoë\u00b4s teapot") == companion._key("Zoë's teapot")  # a keyboard's "´" for "'"
    pot = _save(tmp_path / "Zoë's teapot" / "a.png", 1)
    (tmp_path / "Zoë's teapot" / "description.txt").write_text("from grandma")
    device = DeviceHolding(companion, {"Zoë\u2019s teapot": ("from grandma", [pot])})
    report = companion.sync(device, [companion._folder_entry(tmp_path / "Zoë's teapot")])
    assert report.failed == {} and device.calls == []  # in sync: nothing to send


def test_sync_sends_no_photo_outside_the_databases_folder_unless_allowed(companion, live, capsys, tmp_path):
    # A database or folder from elsewhere (a forum's download) named files of this machine, and sync sent them
    private = [_save(tmp_path / "private" / f"{seed}.png", seed) for seed in (4, 5, 6)]
    database = _rap_database(tmp_path / "rap")
    (database.parent / "database" / "link.png").symlink_to(private[2])
    db = json.loads(database.read_text())
    db["concept_dict"].update({"<up>": {"image": "../private/4.png"}, "<abs>": {"image": str(private[1])},
                               "<linked>": {"image": "./database/link.png"}})
    database.write_text(json.dumps(db))
    folders = tmp_path / "concepts"
    _save(folders / "cat" / "a.png", 7)
    (folders / "cat" / "b.png").symlink_to(private[0])
    for path in (database, folders):
        rc, out, _ = _call(companion, live, capsys, "--json", "sync", path)
        failed = json.loads(out)["failed"]
        assert rc == 1 and set(failed) == ({"up", "abs", "linked"} if path == database else {"cat"}), failed
        assert all("is outside" in why and "--allow-outside" in why for why in failed.values())
    with live.client() as c:
        assert sorted(x["name"] for x in c.get("/api/concepts").json()) == ["bo", "mug"]
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", database, "--allow-outside")
    report = json.loads(out)  # exit status 1 for the database's missing images alone
    assert (rc, report["failed"]) == (1, {}) and report["missing"]
    assert sorted(report["added"]) == ["abs", "linked", "up"]


def test_a_database_nested_too_deeply_is_one_line(companion, live, capsys, tmp_path):
    (tmp_path / "database.json").write_text("[" * 100_000)
    rc, _, err = _call(companion, live, capsys, "sync", tmp_path / "database.json")
    assert rc == 2 and err.startswith("companion: ") and err.count("\n") == 1, err

def test_a_database_entry_with_a_null_info_is_empty_and_a_number_is_a_problem(companion, tmp_path):
    # As import-rap reads RAP's database: null is no description, not the text "None".
    assert companion._database_entry("bo", {"image": None, "info": None, "category": None}, tmp_path).description == ""
    odd = companion._database_entry("bo", {"info": 5}, tmp_path)
    assert odd.problem == "its info 5 is not text"


def test_sync_matches_names_as_the_device_does_and_sends_what_it_can(companion, capsys, tmp_path, monkeypatch):
    # "Bo/" is <bo>, a macOS (decomposed) "Café" is <Café>, hidden folders are not concepts, photos go in
    # batches the device takes, and one photo it refuses keeps no other out.
    from edge_rap.serve.api import Limits

    monkeypatch.setattr(companion, "PHOTOS_PER_REQUEST", 2)
    with live_server(fake_settings(tmp_path), limits=Limits(photos=2)) as live:
        with live.client() as c:
            for name, seed in (("bo", 1), ("Café", 2)):
                files = [("photo", ("p.png", _save(tmp_path / f"{seed}.png", seed).read_bytes(), "image/png"))]
                assert c.post("/api/concepts", data={"name": name}, files=files).status_code == 201
        root = tmp_path / "concepts"
        _save(root / "Bo" / "new.png", 3)
        _save(root / "Cafe\u0301" / "a.png", 2)  # the photo it already has
        _save(root / ".thumbs" / "t.png", 4)
        for k in range(5):
            _save(root / "many" / f"{k}.png", 10 + k)
        (root / "many" / "2b.png").write_bytes(b"not a photo at all")
        (root / "many" / "copy.png").write_bytes((root / "many" / "0.png").read_bytes())  # sent once
        rc, out, _ = _call(companion, live, capsys, "--json", "sync", root)
        report = json.loads(out)
        assert rc == 1 and report["added"] == ["many"] and report["photos_added"] == 6 and report["failed"] == {}
        # named by its file, not by its place in the one-photo request it was sent again in ("photo 1", the third)
        assert report["refused"] == {"many/2b.png": "not an image (unknown or corrupt format)"}, report["refused"]
        with live.client() as c:
            listed = {x["name"]: x["views"] for x in c.get("/api/concepts").json()}
        assert listed == {"bo": 2, "Café": 1, "many": 5}
        rc, out, _ = _call(companion, live, capsys, "--json", "sync", root)
        again = json.loads(out)
        assert (again["added"], again["photos_added"], list(again["refused"])) == ([], 0, ["many/2b.png"])


def test_a_refused_photo_whose_name_is_sent_encoded_is_named_by_its_file_alone(companion, live, capsys, tmp_path):
    # httpx sends a '"' or a control character of a file name %-encoded, so the device's "photo 1 (q%22t.png)" was
    # not taken off: "refused dog/q"t.png: (q%22t.png): not an image"
    root = tmp_path / "concepts"
    _save(root / "dog" / "0.png", 1)
    for name in ('q"t.png', "tab\tx.png", "a).png"):
        (root / "dog" / name).write_bytes(b"not a photo at all " + name.encode())
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", root)
    report = json.loads(out)
    assert (rc, report["added"]) == (1, ["dog"]), report
    assert report["refused"] == {f"dog/{name}": "not an image (unknown or corrupt format)"
                                 for name in ('q"t.png', "tab\tx.png", "a).png")}, report["refused"]


def test_sync_reports_a_folder_by_one_spelling(companion, live, capsys, tmp_path):
    # a macOS (decomposed) "Café" was under `patched` as the folder spells it and under `refused` as the device does
    with live.client() as c:
        files = [("photo", ("p.png", _save(tmp_path / "1.png", 1).read_bytes(), "image/png"))]
        assert c.post("/api/concepts", data={"name": "Café"}, files=files).status_code == 201
    folder = tmp_path / "concepts" / "Cafe\u0301"
    _save(folder / "a.png", 2)
    (folder / "bad.png").write_bytes(b"not a photo at all")
    (folder / "description.txt").write_text("the corner cafe")
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", folder.parent)
    report = json.loads(out)
    assert rc == 1 and report["patched"] == ["Cafe\u0301"] and list(report["refused"]) == ["Cafe\u0301/bad.png"]


def test_list_add_forget_and_events(companion, live, capsys, tmp_path):
    # nothing yet is said as `edge-rap concepts` and `events` say it, not left blank
    assert _call(companion, live, capsys, "list")[1] == "no concepts remembered yet\n"
    assert _call(companion, live, capsys, "events")[1] == "no events\n"
    photo = _save(tmp_path / "bo.png", 8)
    rc, out, _ = _call(companion, live, capsys, "add", "bo", photo, "--description", "our dog", "--category", "dog")
    assert rc == 0 and out.strip() == "added <bo> (1 photo)"
    rc, out, err = _call(companion, live, capsys, "add", "bo", photo)
    assert rc == 2 and err.strip().startswith("companion: POST /api/concepts: 409 ") and err.count("\n") == 1
    rc, out, _ = _call(companion, live, capsys, "add-photos", "BO", _save(tmp_path / "bo2.png", 9))
    assert rc == 0 and out.strip() == "now <bo> (2 photos)"
    rc, _, err = _call(companion, live, capsys, "add-photos", "bo", tmp_path / "bo2.png")
    assert rc == 2 and "already a photo of <bo>" in err
    rc, out, _ = _call(companion, live, capsys, "add", "<cat> ", _save(tmp_path / "cat.png", 10))
    assert rc == 0 and out.strip() == "added <cat> (1 photo)"  # as the device stores the name
    rc, out, _ = _call(companion, live, capsys, "list")  # no description: no ": " after it, as `concepts` says it
    assert out.splitlines() == ["<bo> [dog] 2 photos: our dog", "<cat> 1 photo"]
    _call(companion, live, capsys, "forget", "cat")
    rc, out, _ = _call(companion, live, capsys, "list")
    assert out.strip() == "<bo> [dog] 2 photos: our dog"
    live.home.events.add(Event("arrived", "bo", "door", 2.0, time.time(), said="bo is here"))
    rc, out, _ = _call(companion, live, capsys, "events", "--since", "1h")
    assert out.strip().endswith("[door] <bo> arrived: bo is here")
    rc, out, _ = _call(companion, live, capsys, "events", "--until", "1h")  # sent as the API's until
    assert rc == 0 and out.strip() == "no events"
    rc, out, _ = _call(companion, live, capsys, "forget", "bo")
    assert rc == 0 and _call(companion, live, capsys, "--json", "list")[1].strip() == "[]"


def test_rename_says_both_names_as_the_device_spells_them_and_a_refusal_in_one_line(companion, live, capsys, tmp_path):
    # the companion had no rename: a concept named wrongly from a laptop could only be forgotten and added again
    assert _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 8))[0] == 0
    assert _call(companion, live, capsys, "add", "cat", _save(tmp_path / "cat.png", 9))[0] == 0
    renamed = _call(companion, live, capsys, "rename", "BO", "Bo the dog 🐕")
    assert renamed == (0, "renamed <bo> to <Bo the dog 🐕>\n", "")
    for new, said in (("bo the DOG 🐕", "409 a concept named 'bo the DOG 🐕' already exists"),
                      ("a/b", "422 concept name 'a/b' has a character that is not allowed: '/'")):
        rc, out, err = _call(companion, live, capsys, "rename", "cat", new)
        assert (rc, out, err.count("\n")) == (2, "", 1) and f"companion: PATCH /api/concepts/cat: {said}" in err, err
    rc, out, err = _call(companion, live, capsys, "rename", "nobody", "al")
    assert (rc, out, err) == (2, "", "companion: GET /api/concepts/nobody: 404 no concept named 'nobody'\n")
    rc, out, _ = _call(companion, live, capsys, "--json", "rename", "bo the dog 🐕", "al")
    assert rc == 0 and (json.loads(out)["old"], json.loads(out)["name"]) == ("Bo the dog 🐕", "al")
    assert sorted(c.name for c in live.home.concepts()) == ["al", "cat"]


def test_a_rename_to_the_name_it_has_says_nothing_changed(companion, live, capsys, tmp_path):
    # "renamed <bo> to <bo>", where the device changed nothing; `edge-rap rename bo bo` says so
    assert _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 8))[0] == 0
    for name in ("bo", "BO"):
        assert _call(companion, live, capsys, "rename", name, "bo") == (0, "<bo> is already named so: nothing "
                                                                          "changed\n", "")
    assert _call(companion, live, capsys, "rename", "bo", "BO") == (0, "renamed <bo> to <BO>\n", "")


def test_a_rename_whose_concept_another_client_forgot_is_not_reported_done(companion, live, capsys, monkeypatch,
                                                                           tmp_path):
    """A retried rename's 404 was taken for its own first try's work whenever NEW named any concept: <bo>
    forgotten by another client while its answer was lost, and "al" another concept, was "renamed <bo> to <al>"."""
    monkeypatch.setattr(companion.time, "sleep", lambda s: None)
    live.home.memory.remember("bo", [_save(tmp_path / "bo.png", 8)])
    live.home.memory.remember("al", [_save(tmp_path / "al.png", 9)])

    class ForgottenMeanwhile(httpx.HTTPTransport):
        lost = False

        def handle_request(self, request):
            if request.method == "PATCH" and not self.lost:  # sent, its answer lost; another client forgets <bo>
                self.lost = True
                live.home.forget("bo")
                raise httpx.ReadError("connection reset by peer", request=request)
            return super().handle_request(request)

    real_client = companion.httpx.Client
    monkeypatch.setattr(companion.httpx, "Client", lambda **kw: real_client(transport=ForgottenMeanwhile(), **kw))
    rc, out, err = _call(companion, live, capsys, "rename", "bo", "al")
    assert (rc, out, err) == (2, "", "companion: PATCH /api/concepts/bo: 404 no concept named 'bo'\n")
    assert [c.name for c in live.home.concepts()] == ["al"]


def test_add_and_add_photos_send_the_box_the_photos_are_of(companion, live, capsys, tmp_path):
    """A person's group photo is answered with its faces' boxes: --box says which one (any region, for a thing)."""
    rc, _, err = _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 8), "--box", "10,20,110,140")
    assert rc == 0, err
    rc, _, err = _call(companion, live, capsys, "add-photos", "bo",
                       _save(tmp_path / "bo2.png", 9), "--box", "0,0,64,64")
    assert rc == 0, err
    views = live.home.memory.store.views(live.home.memory.get("bo").id)
    assert sorted(v.box.as_list() for v in views) == [[0, 0, 64, 64], [10, 20, 110, 140]]


def test_an_error_names_the_companions_own_option_not_the_apis_form_field(companion, live, capsys, tmp_path):
    # the device tells a phone to send "the box field": the companion's user gives --box
    photo = _save(tmp_path / "bo.png", 8)
    assert _call(companion, live, capsys, "add", "bo", photo)[0] == 0
    rc, _, err = _call(companion, live, capsys, "add", "mug", photo)
    assert rc == 2 and "give the box of what else it shows (--box)" in err and "field" not in err, err


def test_errors_are_one_line_and_connection_errors_are_retried(companion, live, capsys, monkeypatch):
    rc, _, err = _call(companion, live, capsys, "forget", "nobody")
    assert rc == 2 and err == "companion: GET /api/concepts/nobody: 404 no concept named 'nobody'\n"
    capsys.readouterr()
    assert companion.main(["--url", live.url, "--token", "wrong" * 9, "list"]) == 2
    assert "401 wrong token" in capsys.readouterr().err
    sleeps = []
    monkeypatch.setattr(companion.time, "sleep", sleeps.append)
    from edge_rap.serve.server import bind

    closed = bind("127.0.0.1", 0)
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    assert companion.main(["--url", f"http://127.0.0.1:{port}", "--token", "t", "--retries", "3", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("companion: cannot reach") and err.count("\n") == 1
    assert sleeps == [0.5, 1.0, 2.0]  # backoff doubles between the tries


def test_a_pasted_tokens_line_break_is_dropped_and_a_token_no_header_carries_is_one_line(companion, live, capsys):
    # `--token "$T "` (a space or line break pasted with it) was "cannot reach the device (LocalProtocolError: Illegal
    # header value b'Bearer <the token> ')", retried, the token printed; a "tök" was a traceback (UnicodeEncodeError)
    for pasted in (f"{live.token}\n", f" {live.token} "):
        capsys.readouterr()
        assert companion.main(["--url", live.url, "--token", pasted, "--retries", "0", "list"]) == 0
        assert capsys.readouterr().out == "no concepts remembered yet\n"
    for unsendable in ("t\u00f6k", "to\x00k", f"{live.token[:8]}\u200b{live.token[8:]}"):
        assert companion.main(["--url", live.url, "--token", unsendable, "--retries", "0", "list"]) == 2
        err = capsys.readouterr().err
        assert err == "companion: --token: not a device token, which is ASCII letters and digits (`edge-rap pair " \
                      "--json` on the device prints it)\n", err


@pytest.mark.parametrize("argv", [("add", "Zo\udce9", "p.jpg"), ("add", "bo", "p.jpg", "--category", "\udc9b1mdog"),
                                  ("events", "--name", "Zo\udce9")])
def test_an_argument_not_utf8_is_one_line(companion, live, capsys, tmp_path, argv):
    # a Latin-1 terminal's "é" (Python keeps the byte as a lone surrogate): httpx's UnicodeEncodeError, a traceback
    save(tmp_path / "p.jpg", scene(1))
    rc, out, err = _call(companion, live, capsys, *[tmp_path / a if a == "p.jpg" else a for a in argv])
    assert rc == 2 and err.count("\n") == 1 and "is not UTF-8 text" in err
    assert live.home.concepts() == []


def test_a_folder_or_missing_file_given_as_a_photo_is_said_to_be_what_it_is(companion, live, capsys, tmp_path):
    # a folder was "no such photo", as if it were not there; nothing is sent while any photo given cannot be
    folder, photo = tmp_path / "gran", _save(tmp_path / "gran.png", 3)
    folder.mkdir()
    for argv in (["add", "gran", photo, folder], ["add-photos", "gran", folder, tmp_path / "nope.jpg"]):
        rc, out, err = _call(companion, live, capsys, *argv)
        assert (rc, out) == (2, "") and err.count("\n") == 1, err
        assert f"{folder}: is a folder, not a photo" in err
    assert f"{tmp_path / 'nope.jpg'}: no such photo" in err
    assert _call(companion, live, capsys, "list", "--json")[1] == "[]\n"


@pytest.mark.parametrize("argv", [["add", "bo", "LONG"], ["add-photos", "bo", "LONG"], ["sync", "LONG"]])
def test_a_path_too_long_for_the_file_system_is_one_line(companion, live, capsys, tmp_path, argv):
    # a name over 255 bytes made Path.is_file() raise (Python 3.11): an OSError traceback, as edge-rap's had
    long = str(tmp_path / ("a" * 300))
    rc, out, err = _call(companion, live, capsys, *[long if a == "LONG" else a for a in argv])
    assert (rc, out, err) == (2, "", f"companion: {long}: File name too long\n")


def test_an_empty_box_since_or_name_is_refused_not_taken_as_left_out(companion, live, capsys, tmp_path):
    # `--box "$UNSET"` sent the whole group photo for the face meant; `events --since "" --name ""` listed every event;
    # `forget ""` said "GET /api/concepts/: 307 Temporary Redirect"
    photo = _save(tmp_path / "gran.png", 3)
    for argv, option in ((["add", "gran", photo, "--box", ""], "--box"), (["add-photos", "gran", photo, "--box", " "],
                         "--box"), (["events", "--since", ""], "--since"), (["events", "--until", ""], "--until"),
                         (["events", "--name", ""], "--name"),
                         (["forget", ""], "NAME"), (["add-photos", " ", photo], "NAME")):
        rc, out, err = _call(companion, live, capsys, *argv)
        assert (rc, out) == (2, "") and err.startswith(f"companion: {option} ") and "is empty" in err, err
    assert _call(companion, live, capsys, "list", "--json")[1] == "[]\n"


def test_a_name_of_dots_is_sent_as_a_name_not_read_as_a_folder(companion, live, capsys, tmp_path):
    # `forget .` asked GET /api/concepts/ (the URL's own folder), a traceback on the list it answered; `add-photos ..`
    # asked /api/photos, a 404 blaming --url: the device's own refusal of the name is what is said
    photo = _save(tmp_path / "gran.png", 3)
    for argv in (["forget", "."], ["forget", ".."], ["add-photos", ".", photo], ["add-photos", "..", photo]):
        rc, out, err = _call(companion, live, capsys, *argv)
        said = f"422 concept name '{argv[1]}' is not allowed"
        assert (rc, out) == (2, "") and err.count("\n") == 1 and said in err, err


def test_a_wrong_url_is_one_line_that_says_what_to_give(companion, live, capsys):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotTheDevice(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>a router's page</html>")

        def log_message(self, *args):
            pass

    other = HTTPServer(("127.0.0.1", 0), NotTheDevice)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        for url, said in ((live.url.removeprefix("http://"), "give the device as http://HOST:PORT"),
                          (live.url + "/api", "404 Not Found (is --url the device's address"),
                          (f"http://127.0.0.1:{other.server_port}", "is --url an edge-rap device?")):
            capsys.readouterr()
            assert companion.main(["--url", url, "--token", live.token, "--retries", "0", "list"]) == 2
            err = capsys.readouterr().err
            assert said in err and err.count("\n") == 1, err
    finally:
        other.shutdown()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_output_that_cannot_be_written_is_one_line_and_a_reader_that_left_is_quiet(live):
    # `companion.py list --json > /dev/full` and `... | head -c 0` ended in a traceback (OSError, BrokenPipeError)
    import os
    import subprocess

    env = {**os.environ, "EDGE_RAP_URL": live.url, "EDGE_RAP_TOKEN": live.token}
    command = [sys.executable, str(TOOLS / "companion.py"), "list", "--json"]
    with open("/dev/full", "w") as full:
        child = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    assert (child.returncode, child.stderr) == (2, "companion: cannot write the output (No space left on device)\n")
    read, write = os.pipe()
    os.close(read)  # the reader has already gone
    child = subprocess.run(command, stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    os.close(write)
    assert (child.returncode, child.stderr) == (141, "")


def test_forget_with_json_prints_json_as_every_other_command(companion, live, capsys, tmp_path):
    # `--json forget bo` printed "forgot <bo>": a script reading JSON failed on it
    _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 8))
    rc, out, _ = _call(companion, live, capsys, "--json", "forget", "bo")
    assert rc == 0 and json.loads(out) == {"name": "bo"}


def test_forget_names_the_concept_as_the_device_spells_it(companion, live, capsys, tmp_path):
    # `forget 'Q?X#Y'` printed the typed spelling, "forgot <Q?X#Y>", for the device's <q?x#y>
    _call(companion, live, capsys, "add", "q?x#y", _save(tmp_path / "q.png", 8))
    rc, out, _ = _call(companion, live, capsys, "forget", "Q?X#Y")
    assert (rc, out) == (0, "forgot <q?x#y>\n") and live.home.concepts() == []


def test_every_companion_option_says_what_it_does_and_its_default(companion):
    # --description, --category, --name and the arguments were bare; --url and --token did not say they come
    # from EDGE_RAP_URL and EDGE_RAP_TOKEN when left out
    from parsers import every_parser, unexplained

    assert unexplained(every_parser(companion.build_parser(), ("companion.py",))) == ([], [])
    assert "EDGE_RAP_URL" in companion.build_parser().format_help()


class _LosesAnswers(httpx.HTTPTransport):
    """Delivers every request, then loses the answer of the first of each method in `methods` (a Wi-Fi that
    drops as the device answers): the device did the work, the companion saw a broken connection."""

    def __init__(self, methods: set[str]):
        super().__init__()
        self.methods = set(methods)

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.method in self.methods:
            self.methods.discard(request.method)
            response.read()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_a_write_whose_answer_was_lost_is_not_reported_as_failed_when_retried(companion, live, capsys,
                                                                              monkeypatch, tmp_path):
    """The retry of an add, an add-photos or a forget the device had already done was refused (409 the name is
    taken, 422 the photos already held, 404 no such concept) and reported as a failure: the user was told the
    work was not done when it was. Now the device is asked what it holds, and what was asked is reported done."""
    monkeypatch.setattr(companion.time, "sleep", lambda s: None)
    lossy = _LosesAnswers({"POST", "DELETE"})
    real_client = companion.httpx.Client
    monkeypatch.setattr(companion.httpx, "Client", lambda **kw: real_client(transport=lossy, **kw))
    rc, out, err = _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 8))
    assert (rc, out.strip(), err) == (0, "added <bo> (1 photo)", "")
    lossy.methods = {"POST"}
    rc, out, err = _call(companion, live, capsys, "add-photos", "bo", _save(tmp_path / "bo2.png", 9))
    assert (rc, out.strip(), err) == (0, "now <bo> (2 photos)", "")
    lossy.methods = {"PATCH"}
    rc, out, err = _call(companion, live, capsys, "rename", "bo", "Bo")
    assert (rc, out.strip(), err) == (0, "renamed <bo> to <Bo>", "")
    lossy.methods = {"PATCH"}
    rc, out, err = _call(companion, live, capsys, "rename", "bo", "al")
    assert (rc, out.strip(), err) == (0, "renamed <Bo> to <al>", "")
    rc, out, err = _call(companion, live, capsys, "forget", "al")
    assert (rc, out.strip(), err) == (0, "forgot <al>", "")
    assert live.home.concepts() == []
    lossy.methods = {"POST"}  # a name taken by someone else meanwhile is still refused
    live.home.memory.remember("cat", [_save(tmp_path / "cat.png", 10)])
    rc, _, err = _call(companion, live, capsys, "add", "cat", _save(tmp_path / "other.png", 11))
    assert rc == 2 and "409" in err


def test_no_companion_option_is_reached_by_an_abbreviation(companion):
    # as edge-rap: `--tok T` was taken for --token, so a script changed meaning when an option was added
    from parsers import abbreviations_taken, every_parser

    assert abbreviations_taken(every_parser(companion.build_parser(), ("companion.py",))) == []


def test_a_photo_refused_among_others_added_says_which_were_added_and_nothing_unchanged(companion, live, capsys,
                                                                                      tmp_path):
    """One photo of three refused (another concept's), the other two added: its line ended "nothing was changed",
    the device's words for that photo's own request, while the command had added two; which two was not said."""
    taken = _save(tmp_path / "bo.png", 1)
    assert _call(companion, live, capsys, "add", "bo", taken)[0] == 0
    rc, out, err = _call(companion, live, capsys, "add", "cat", _save(tmp_path / "a.png", 2), taken,
                         _save(tmp_path / "b.png", 3))
    assert (rc, out) == (1, "added <cat> (2 photos): sent a.png, b.png\n"), err  # 1: done in part
    assert err.startswith("refused cat/bo.png: is already a photo of <bo>") and err.count("\n") == 1
    assert "nothing was changed" not in err
    rc, out, err = _call(companion, live, capsys, "--json", "add-photos", "cat", _save(tmp_path / "c.png", 4), taken)
    said = json.loads(out)
    assert (rc, said["views"], said["sent"], list(said["refused"])) == (1, 3, ["c.png"], ["bo.png"])
    assert "nothing was changed" not in said["refused"]["bo.png"]
    rc, _, err = _call(companion, live, capsys, "add-photos", "cat", taken)  # nothing added: said so
    assert rc == 2 and err.endswith("; nothing was changed\n") and err.count("nothing was changed") == 1, err
    _save(tmp_path / "concepts" / "dog" / "a.png", 5).with_name("b.png").write_bytes(taken.read_bytes())
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", tmp_path / "concepts")
    report = json.loads(out)
    assert (rc, report["sent"], list(report["refused"])) == (1, ["dog/a.png"], ["dog/b.png"])
    assert "nothing was changed" not in report["refused"]["dog/b.png"]


def test_a_photo_given_twice_is_said_to_be_sent_once(companion, live, capsys, tmp_path):
    # `add bo a.png a.png copy.png` sent a.png once, silently: the user counted three photos, the device said one
    photo = _save(tmp_path / "a.png", 1)
    (tmp_path / "copy.png").write_bytes(photo.read_bytes())
    rc, out, err = _call(companion, live, capsys, "add", "bo", photo, photo, tmp_path / "copy.png")
    assert (rc, out) == (0, "added <bo> (1 photo)\n")
    assert err == ("not sent again: bo/a.png (given twice: sent once)\n"
                   "not sent again: bo/copy.png (the same photo as bo/a.png: sent once)\n")
    again = _save(tmp_path / "b.png", 2)
    rc, out, _ = _call(companion, live, capsys, "--json", "add-photos", "bo", again, again)
    assert (rc, json.loads(out)["given_twice"], json.loads(out)["sent"]) == (0, {"b.png": "b.png"}, ["b.png"])
    folder = tmp_path / "concepts" / "cat"
    (folder / "x.png").write_bytes(_save(folder / "w.png", 3).read_bytes())
    rc, out, _ = _call(companion, live, capsys, "--json", "sync", folder.parent)
    assert (rc, json.loads(out)["given_twice"]) == (0, {"cat/x.png": "cat/w.png"})


def test_a_device_stopping_mid_upload_is_said_so_not_lost_behind_cannot_reach(companion, capsys, tmp_path,
                                                                            monkeypatch):
    """serve stopped (SIGTERM) while an upload was under way: the 503 it answered, "the device is shutting down",
    was retried, and the last try said only "cannot reach ... Connection refused". Now the device cannot tell whether
    a change the memory closed under was made (a 503 without Retry-After says so): not retried either."""
    import threading

    from fakes import fake_memory

    from edge_rap.household import Household
    from edge_rap.serve.app import create_app
    from edge_rap.serve.drain import MAY_BE_DONE
    from edge_rap.serve.server import start_server_thread
    from edge_rap.serve.token import TOKEN_FILE

    settings = fake_settings(tmp_path)
    home = Household(settings)
    home.__dict__["memory"] = memory = fake_memory(settings.memory)
    handle = start_server_thread(create_app(home), "127.0.0.1", 0)
    began, closed = threading.Event(), threading.Event()
    remember = memory.remember

    def held(*args, **kwargs):  # the upload is in; the device stops before it is stored
        began.set()
        closed.wait(30)
        return remember(*args, **kwargs)

    def stop() -> None:  # as `serve` stops on SIGTERM
        began.wait(30)
        handle.in_flight.close(0)
        home.close()
        closed.set()
        handle.stop(0.5)
        handle.finish()

    monkeypatch.setattr(memory, "remember", held)
    stopping = threading.Thread(target=stop)
    stopping.start()
    monkeypatch.setattr(companion.time, "sleep", lambda s: stopping.join(30))  # retried once it is gone
    token = (settings.memory / TOKEN_FILE).read_text().strip()
    capsys.readouterr()
    rc = companion.main(["--url", handle.url, "--token", token, "add", "bo", str(_save(tmp_path / "bo.png", 1))])
    out, err = capsys.readouterr()
    assert (rc, out, err) == (2, "", f"companion: POST /api/concepts: 503 {MAY_BE_DONE}\n")
    with Household(settings) as again:  # (it was not)
        again.__dict__["memory"] = fake_memory(settings.memory)
        assert again.concepts() == []


def test_a_device_that_stops_after_a_first_batch_names_what_that_batch_added(companion, live, capsys, tmp_path,
                                                                            monkeypatch):
    # the second batch answered 503 as the device stopped: the error alone, exit status 2, hid the first batch's photo
    from edge_rap.serve.drain import BACK_SOON, SHUTTING_DOWN

    monkeypatch.setattr(companion, "PHOTOS_PER_REQUEST", 1)
    monkeypatch.setattr(companion.time, "sleep", lambda s: None)

    class StopsAtTheSecond(httpx.HTTPTransport):
        posts = 0

        def handle_request(self, request):
            self.posts += request.method == "POST"
            if self.posts == 2:
                return httpx.Response(503, json={"error": SHUTTING_DOWN}, headers=BACK_SOON)
            if self.posts > 2:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            return super().handle_request(request)

    real_client = companion.httpx.Client
    monkeypatch.setattr(companion.httpx, "Client", lambda **kw: real_client(transport=StopsAtTheSecond(), **kw))
    rc, out, err = _call(companion, live, capsys, "add", "bo", _save(tmp_path / "a.png", 1),
                         _save(tmp_path / "b.png", 2))
    assert (rc, out) == (1, "sent 1 photo to <bo> before the error below: a.png\n"), err
    assert err.startswith("companion: POST /api/concepts/bo/photos: 503 the device is shutting down") and \
        err.endswith("nothing of this request was stored\n")
    assert live.home.memory.get("bo").views == 1


def test_a_rename_done_in_part_is_not_retried_into_a_404(companion, live, capsys, monkeypatch, tmp_path):
    # a rename whose events could not follow (a nearly full disk) is the device's 503, without Retry-After: the
    # companion retried it, and the retry's 404 for the old name was all it said ("PATCH /api/concepts/bo: 404 no
    # concept named 'bo'"), the rename done and how to carry its events along lost
    import sqlite3

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    monkeypatch.setattr(companion.time, "sleep", lambda s: None)
    live.home.memory.remember("bo", [_save(tmp_path / "bo.png", 8)])
    live.home.events.add(Event("arrived", "bo", "den", 0.0, 1.0))

    def full(self, old, new):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(EventLog, "rename", full)
    rc, out, err = _call(companion, live, capsys, "rename", "bo", "al")
    assert (rc, out) == (2, "") and err == ("companion: PATCH /api/concepts/bo: 503 its events stay under <bo> (the "
                                            "disk is full), though <bo> itself is renamed <al>: rename <al> to <bo> "
                                            "and back again to carry them along\n"), err
    assert [c.name for c in live.home.concepts()] == ["al"]


class _TimesOutOnce(httpx.HTTPTransport):
    """Answers the first POST 408, as the device answers an upload that stalled past its patience (nothing of it
    done), without sending it on."""

    def __init__(self):
        super().__init__()
        self.timed_out = False

    def handle_request(self, request):
        if request.method == "POST" and not self.timed_out:
            self.timed_out = True
            request.read()
            return httpx.Response(408, json={"error": "nothing came for 30 s of a request not all there"})
        return super().handle_request(request)


def test_an_upload_the_device_timed_out_is_sent_again(companion, live, capsys, monkeypatch, tmp_path):
    # A stalled upload was cut off without a word, which the companion retried as a connection error; the device now
    # says why (408), which was an error at once: the user told to try again what a retry does
    sleeps = []
    monkeypatch.setattr(companion.time, "sleep", sleeps.append)
    stalls = _TimesOutOnce()
    real_client = companion.httpx.Client
    monkeypatch.setattr(companion.httpx, "Client", lambda **kw: real_client(transport=stalls, **kw))
    rc, out, err = _call(companion, live, capsys, "add", "bo", _save(tmp_path / "bo.png", 8))
    assert (rc, out.strip(), err, sleeps) == (0, "added <bo> (1 photo)", "", [0.5])
    assert [c.name for c in live.home.concepts()] == ["bo"]
