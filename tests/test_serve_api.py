"""The API does what the CLI does, with the real default embedder: a concept added over HTTP is one the CLI
lists and recognises at once, `/api/recognize` answers what `recognize --json` prints, renames and forgets
carry the event log along, events come with their snapshots, ask streams Server-Sent Events."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from photos import photo, save_photo, side_by_side
from serve_support import fake_settings, hold_recognition, jpeg, live_server, photo_files, png, warnings_said

from edge_rap.types import Box, Event


@pytest.fixture
def live(settings):
    with live_server(settings, fake=False) as server:
        yield server


def test_a_concept_added_over_http_is_the_clis_at_once(live, run, tmp_path):
    with live.client() as c:
        r = c.post("/api/concepts", data={"name": "astronaut", "description": "in a spacesuit", "category": "explorer"},
                   files=photo_files(jpeg(photo("astronaut"))))
        assert r.status_code == 201, r.text
        assert r.json()["views"] == 1 and r.json()["description"] == "in a spacesuit"
        assert c.post("/api/concepts/astronaut/photos", files=photo_files(png(photo("astronaut")[:, ::-1]))
                      ).json()["views"] == 2
        assert c.post("/api/concepts", data={"name": "coffee"}, files=photo_files(png(photo("coffee")))
                      ).status_code == 201
    rc, out, _ = run("concepts", "--json")
    assert rc == 0
    listed = {c["name"]: c for c in json.loads(out)}
    assert sorted(listed) == ["astronaut", "coffee"] and listed["astronaut"]["views"] == 2
    frame = save_photo(tmp_path / "frames", "astronaut")
    rc, out, _ = run("recognize", str(frame), "--json")
    cli = json.loads(out)
    with live.client() as c:
        api = c.post("/api/recognize", files=photo_files(frame.read_bytes(), names=(frame.name,))).json()
    assert api["image"] == frame.name and cli["image"] == str(frame)  # each names the photo as it was given
    assert [h["name"] for h in api["concepts"]] == [h["name"] for h in cli["concepts"]] == ["astronaut"]
    assert api["concepts"][0]["box"] == cli["concepts"][0]["box"]
    assert api["concepts"][0]["score"] == pytest.approx(cli["concepts"][0]["score"], abs=1e-3)


def test_a_refused_upload_is_named_by_its_place_and_file_name(live):
    import numpy as np

    with live.client() as c:
        r = c.post("/api/concepts", data={"name": "boot"},
                   files=photo_files(png(photo("coffee")), png(np.zeros((1, 1, 3), np.uint8)),
                                     names=("boot.png", "tiny.png")))
        assert r.status_code == 422
        assert r.json()["error"].startswith("photo 2 (tiny.png) has no detail (1 x 1 pixels")


def test_a_photo_of_another_concept_names_the_form_field_not_the_cli_option(live):
    # a phone was told to "give --box of what else it shows": an option of a command line it does not have
    with live.client() as c:
        r = c.post("/api/concepts", data={"name": "boot"}, files=photo_files(png(photo("coffee"))))
        assert r.status_code == 201
        r = c.post("/api/concepts", data={"name": "mug"}, files=photo_files(png(photo("coffee")), names=("c.png",)))
        assert r.status_code == 422 and r.json()["error"] == (
            "photo 1 (c.png) is already a photo of <boot>: two concepts of one photo would always tie: give the box "
            "of what else it shows (the box field); nothing was changed")


def test_a_persons_photo_with_two_faces_answers_the_faces_to_choose_from(live):
    pair = side_by_side("astronaut", "grace_hopper")
    with live.client() as c:
        r = c.post("/api/concepts", data={"name": "grace", "category": "person"},
                   files=photo_files(png(photo("grace_hopper")), png(pair), names=("grace.png", "both.png")))
        assert r.status_code == 422 and r.json()["error"].startswith("photo 2 (both.png): 2 faces found")
        assert "(the box field;" in r.json()["error"] and "--" not in r.json()["error"]  # no CLI option
        choice = r.json()["faces"]
        assert choice["photo"] == 2 and len(choice["boxes"]) == 2
        right = max(choice["boxes"], key=lambda b: b[0])  # grace's face, in the right half
        assert right[0] >= 300 and all(b[2] <= 600 and b[3] <= 300 for b in choice["boxes"])
        assert c.get("/api/concepts").json() == []  # nothing half-remembered
        r = c.post("/api/concepts", data={"name": "grace", "category": "person", "box": ",".join(map(str, right))},
                   files=photo_files(png(pair)))
        assert r.status_code == 201, r.text
    (face,) = live.home.memory.store.views(live.home.memory.get("grace").id, kind="face")
    assert face.box.x0 >= right[0] - 2 and face.box.x1 <= right[2] + 2


def test_events_since_and_until_alike_are_refused_however_the_clock_moved(live, ticking_parse_clock):
    with live.client() as c:  # (each read its own clock: `?since=1d&until=1d`, a moment apart, was [])
        r = c.get("/api/events", params={"since": "1d", "until": "1d"})
    assert r.status_code == 422 and "until '1d' is not after since '1d'" in r.text


def test_rename_edit_and_forget_follow_the_cli_rules_and_carry_the_events(live, run, tmp_path):
    snap = tmp_path / "snaps" / "1700000000000-0123abcd.jpg"
    snap.parent.mkdir()
    snap.write_bytes(jpeg(photo("coffee")))
    with live.client() as c:
        assert c.post("/api/concepts", data={"name": "coffee"}, files=photo_files(png(photo("coffee")))
                      ).status_code == 201
        assert c.post("/api/concepts", data={"name": "chelsea"}, files=photo_files(png(photo("chelsea")))
                      ).status_code == 201
        live.home.events.add(Event("arrived", "coffee", "den", 1.0, time.time(), Box(1, 2, 30, 40), 0.8, "hello",
                                   str(snap)))
        r = c.patch("/api/concepts/coffee", json={"name": "mug", "description": "the blue mug", "category": "cup"})
        assert r.status_code == 200 and (r.json()["name"], r.json()["category"]) == ("mug", "cup")
        assert c.patch("/api/concepts/mug", json={"name": "chelsea"}).status_code == 409
        assert c.patch("/api/concepts/mug", json={"name": "Chelsea"}).status_code == 409  # one name in any case
        assert c.post("/api/concepts", data={"name": "CHELSEA"}, files=photo_files(png(photo("rocket")))
                      ).status_code == 409
        assert c.patch("/api/concepts/chelsea", json={"name": "Chelsea"}).status_code == 200  # its own, recased
        assert c.patch("/api/concepts/Chelsea", json={"name": "chelsea"}).status_code == 200
        assert c.get("/api/events", params={"name": "nobody"}).status_code == 404
        assert len(c.get("/api/events", params={"name": "MUG"}).json()) == 1  # any case, as the CLI
        # the route as issue 12 writes it, `?since=&name=`: every event (was 422, "since ''")
        r = c.get("/api/events?since=&name=")
        assert r.status_code == 200, r.text
        assert [e["name"] for e in r.json()] == ["mug"] == [e["name"] for e in c.get("/api/events?name=").json()]
        events = c.get("/api/events", params={"since": "1h", "name": "mug"}).json()
        assert c.get("/api/events", params={"until": "1h"}).json() == []  # as `events --until`
        assert c.get("/api/events", params={"since": "1h", "until": "2h"}).status_code == 422
        assert c.get("/api/events", params={"since": "1h", "until": "0s"}).json() == events
        assert [(e["type"], e["name"], e["box"], e["said"]) for e in events] == [("arrived", "mug", [1, 2, 30, 40],
                                                                                 "hello")]
        shot = c.get(events[0]["snapshot"])
        assert shot.headers["content-type"] == "image/jpeg" and shot.content == snap.read_bytes()
        rc, out, _ = run("concepts", "--json")
        assert {c["name"]: c["description"] for c in json.loads(out)}["mug"] == "the blue mug"
        assert c.delete("/api/concepts/mug").status_code == 204
        assert c.get("/api/events").json() == [] and not snap.exists()
        assert c.delete("/api/concepts/mug").status_code == 404
        live.home.events.add(Event("arrived", "gone", "den", 1.0, time.time()))  # kept by a forget whose log failed
        assert [e["name"] for e in c.get("/api/events", params={"name": "Gone"}).json()] == ["gone"]  # as the CLI
    rc, out, _ = run("concepts", "--json")
    assert [c["name"] for c in json.loads(out)] == ["chelsea"]


def test_a_name_of_punctuation_alone_is_422_and_its_patch_changes_nothing(tmp_path):
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "?"}, files=photo_files(png(photo("coffee")))
                      ).status_code == 422
        assert c.post("/api/concepts", data={"name": "boot", "description": "brown"},
                      files=photo_files(png(photo("coffee")))).status_code == 201
        r = c.patch("/api/concepts/boot", json={"name": "...", "description": "black"})
        assert r.status_code == 422 and "needs a letter, a digit or an emoji" in r.json()["error"]
        assert [(k["name"], k["description"]) for k in c.get("/api/concepts").json()] == [("boot", "brown")]


def test_a_patch_of_control_characters_only_or_of_null_is_422_and_changes_nothing(tmp_path):
    # {"category": "\u0000"} cleared the category (its control characters dropped), answered 200; {"name": null}
    # was a 200 that changed nothing
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "boot", "category": "shoe"},
                      files=photo_files(png(photo("coffee")))).status_code == 201
        for change, said in (({"category": "\u0000\u001b"}, "only control characters"),
                             ({"name": None, "description": "black"}, "name: null")):
            r = c.patch("/api/concepts/boot", json=change)
            assert r.status_code == 422 and said in r.json()["error"], r.text
        assert [(k["name"], k["category"], k["description"]) for k in c.get("/api/concepts").json()] == \
            [("boot", "shoe", "")]
        assert c.patch("/api/concepts/boot", json={"category": ""}).json()["category"] == ""  # "" still clears
        fields = c.get("/openapi.json").json()["components"]["schemas"]["ConceptPatch"]["properties"]
        assert {f: said.get("type") for f, said in fields.items()} == dict.fromkeys(fields, "string")  # not null



def test_a_lone_surrogate_in_a_patch_is_422_naming_its_field_as_the_cli_refuses_it(tmp_path):
    # the CLI's Latin-1 "caf\xe9" and JSON's "caf\\udce9" were stored as "caf", where a name of it is refused
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "boot", "description": "brown"},
                      files=photo_files(png(photo("coffee")))).status_code == 201
        for field in ("description", "category"):
            r = c.patch("/api/concepts/boot", content=f'{{"{field}": "caf\\udce9 ok"}}'.encode(),
                        headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and r.json()["error"].startswith(f"{field} 'caf\\xe9 ok' has a character "
                                                                         "that is not allowed"), r.text
        assert [(k["description"], k["category"]) for k in c.get("/api/concepts").json()] == [("brown", "")]


def test_a_patch_of_the_values_stored_changes_nothing_not_even_updated(tmp_path):
    # a client that sends the whole concept back (the page sends the category with every edit) moved `updated`, as
    # if the concept had changed: a phone's sync by it fetched it again; a rename to its own name already kept it
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        made = c.post("/api/concepts", data={"name": "boot", "description": "brown", "category": "shoe"},
                      files=photo_files(png(photo("coffee")))).json()
        for same in ({"description": "brown"}, {"category": "shoe", "description": " brown\n"},
                     {"name": "boot", "description": "brown", "category": "shoe"}):
            r = c.patch("/api/concepts/boot", json=same)
            assert r.status_code == 200 and r.json() == made, (same, r.text)
        changed = c.patch("/api/concepts/boot", json={"description": "black"}).json()
        assert changed["description"] == "black" and changed["updated"] >= made["updated"]


def test_an_old_name_of_punctuation_alone_sent_back_unchanged_with_a_patch_is_no_rename(tmp_path):
    # a client that sends the whole concept back ({"name": "...", "description": ...}) was refused 422, though the
    # CLI's `rename ... ...` changes nothing and succeeds
    from edge_rap.memory.store import Store

    settings = fake_settings(tmp_path)
    with live_server(settings) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "boot"}, files=photo_files(png(photo("coffee")))
                      ).status_code == 201
        store = Store(settings.memory)
        with store.transaction() as db:  # as a memory made before such names were refused holds them
            db.execute("INSERT INTO concepts (name, category, description, created, updated) "
                       "VALUES ('...', '', '', 0, 0)")
        store.close()
        r = c.patch("/api/concepts/...", json={"name": "...", "description": "the dots"})
        assert r.status_code == 200 and (r.json()["name"], r.json()["description"]) == ("...", "the dots")
        assert c.patch("/api/concepts/boot", json={"name": "-"}).status_code == 422  # a new one is still refused


def test_a_description_is_measured_as_it_is_stored(tmp_path):
    # a browser sends a textarea's line breaks as CRLF: 700 short lines were refused as 2100 characters, which the
    # CLI stores as the 1399 of one line
    lines = "a\r\n" * 700
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        r = c.post("/api/concepts", data={"name": "boot", "description": lines},
                   files=photo_files(png(photo("coffee"))))
        assert r.status_code == 201 and r.json()["description"] == " ".join("a" * 700)
        assert c.patch("/api/concepts/boot", json={"description": "b  " * 1000}).status_code == 200
        r = c.patch("/api/concepts/boot", json={"description": "b" * 2001})
        assert r.status_code == 422 and r.json()["error"] == "description is 2001 characters; the limit is 2000"


def test_photos_for_a_concept_forgotten_while_they_were_read_are_404(tmp_path, monkeypatch):
    # `edge-rap forget boot` in another process between the lookup and the write: the concept is not there.
    from edge_rap.memory.memory import Memory

    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "boot"}, files=photo_files(png(photo("coffee")))
                      ).status_code == 201
        add_views = Memory.add_views

        def forgotten_meanwhile(self, name, *args, **kwargs):
            self.forget(name)
            return add_views(self, name, *args, **kwargs)

        monkeypatch.setattr(Memory, "add_views", forgotten_meanwhile)
        r = c.post("/api/concepts/boot/photos", files=photo_files(png(photo("rocket"))))
        assert r.status_code == 404 and r.json()["error"] == "no concept named 'boot'"


def test_a_photo_is_sent_as_a_small_upright_jpeg_when_a_size_is_asked(tmp_path):
    # The page showed each 80-pixel card photo from the stored file: a phone's 12-megapixel photos took megabytes
    # each (and a HEIC one shows in no browser but Safari). `?size=` sends what the screen needs.
    import io

    from PIL import Image

    big = np.asarray(Image.fromarray(photo("coffee")).resize((1600, 1200)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side, as a phone held upright stores it
    stored = io.BytesIO()
    Image.fromarray(big).save(stored, "JPEG", quality=90, exif=exif)
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        files = [("photo", ("p.jpg", stored.getvalue(), "image/jpeg"))]
        concept = c.post("/api/concepts", data={"name": "mug"}, files=files).json()
        url = concept["photos"][0]["url"]
        whole = c.get(url)
        assert whole.content == stored.getvalue()  # without a size: the stored file, byte for byte
        small = c.get(url, params={"size": 200})
        assert small.status_code == 200 and small.headers["content-type"] == "image/jpeg"
        shown = Image.open(io.BytesIO(small.content))
        assert shown.format == "JPEG" and shown.size == (150, 200)  # upright: the quarter turn applied
        assert len(small.content) < len(whole.content) / 10
        for size in (0, 15, 4096, "big"):
            assert c.get(url, params={"size": size}).status_code == 422
        path = next((tmp_path / "memory" / "images").rglob("*.jpg"))
        path.write_bytes(stored.getvalue()[:300])  # damaged on the device since (a size not made before)
        broken = c.get(url, params={"size": 190})
        assert broken.status_code == 503 and "cannot be read" in broken.json()["error"]
        assert str(tmp_path) not in broken.json()["error"]  # the device's paths stay on the device


def test_a_head_of_a_photos_size_answers_what_its_get_would(tmp_path, monkeypatch):
    # a HEAD of `?size=N` answered 200 unmade where the GET was a 503 (a photo damaged since); made, it is kept for
    # the GET after, and its length is said
    from edge_rap.serve import thumbnails

    made = []
    real = thumbnails.thumbnail_jpeg
    monkeypatch.setattr(thumbnails, "thumbnail_jpeg", lambda *a: made.append(a) or real(*a))
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        url = c.post("/api/concepts", data={"name": "mug"}, files=photo_files(png(photo("coffee")))).json()[
            "photos"][0]["url"]
        r = c.head(url, params={"size": 200})
        got = c.get(url, params={"size": 200})
        assert (r.status_code, r.headers["content-type"], r.content) == (200, "image/jpeg", b"")
        assert r.headers["content-length"] == str(len(got.content)) and len(made) == 1  # made once, for both
        assert c.head(url, params={"size": 15}).status_code == 422  # checked as the GET is
        assert c.head(url.replace("/photos/", "/photos/9"), params={"size": 200}).status_code == 404
        path = next((tmp_path / "memory" / "images").rglob("*.png"))
        path.write_bytes(path.read_bytes()[:300])  # damaged on the device since (a size not made before)
        head, get = c.head(url, params={"size": 190}), c.get(url, params={"size": 190})
        assert (head.status_code, head.content) == (503, b"") and get.status_code == 503
        assert {k: v for k, v in head.headers.items() if k != "date"} == \
            {k: v for k, v in get.headers.items() if k != "date"}


def test_a_photo_or_the_page_is_sent_whole_whatever_range_is_asked(tmp_path):
    # Starlette answered a Range with 206, or a text/plain 416 (past the end) or 400 (unreadable) that the schema
    # listed for no route and that was not the {"error": ...} of every other error
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        stored = png(photo("coffee"))
        url = c.post("/api/concepts", data={"name": "mug"}, files=photo_files(stored)).json()["photos"][0]["url"]
        for asked in ("bytes=0-9", f"bytes={len(stored) + 10}-", "bytes=zz", "pages=1"):
            for path, whole in ((url, stored), ("/", c.get("/").content)):
                r = c.get(path, headers={"Range": asked})
                assert (r.status_code, r.content) == (200, whole), (path, asked)
                assert "accept-ranges" not in r.headers


def test_a_photo_is_sent_without_where_it_was_taken(tmp_path):
    """A phone's photo carries the household's address (EXIF GPS; an editor's XMP too): the stored file keeps it
    (a backup restores it byte for byte), and the API sent it to any paired app or page with the file."""
    import io

    from PIL import Image

    gps = {1: "N", 2: (52.0, 31.0, 12.34), 3: "E", 4: (13.0, 24.0, 5.6)}
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x8825] = 6, "Phone", gps  # stored on its side, as a phone held upright stores it
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>52,31.2N</exif:GPSLatitude></x:xmpmeta>'
    sent = {}
    for fmt, kind in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
        out = io.BytesIO()
        Image.fromarray(photo("coffee" if fmt == "JPEG" else "rocket")).save(out, fmt, exif=exif, xmp=xmp)
        sent[fmt] = out.getvalue()
    appended = jpeg(photo("rocket")[:64, :64]).replace(b"JFIF", b"GPS!")  # after the picture: an MPO's other one
    sent["JPEG"] += appended
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        for fmt, data in sent.items():
            concept = c.post("/api/concepts", data={"name": fmt.lower()},
                             files=[("photo", (f"p.{fmt.lower()}", data, "image/jpeg"))]).json()
            whole = c.get(concept["photos"][0]["url"])
            assert whole.status_code == 200 and b"GPS" not in whole.content and b"Phone" not in whole.content
            shown = Image.open(io.BytesIO(whole.content))
            assert not shown.getexif().get_ifd(0x8825) and "xmp" not in shown.info
            stored = Image.open(io.BytesIO(data))
            if fmt == "JPEG":  # the same pixels, still turned upright by the viewer
                assert whole.headers["content-type"] == "image/jpeg" and dict(shown.getexif()) == {0x0112: 6}
                assert np.array_equal(np.asarray(shown), np.asarray(stored))
            else:  # another format: a PNG of the upright pixels
                assert whole.headers["content-type"] == "image/png" and shown.size == stored.size[::-1]
    kept = [p.read_bytes() for p in (tmp_path / "memory" / "images").rglob("*.*")]
    assert sorted(kept) == sorted(sent.values())  # the household's own copies, as they came


def test_a_cards_photo_is_made_once_and_those_made_stay_within_their_bytes(tmp_path, monkeypatch):
    # Each visit of the page asked for every card's photo again, each decoded anew under the device's one lock
    import edge_rap.serve.thumbnails as thumbnails

    made = []
    monkeypatch.setattr(thumbnails, "thumbnail_jpeg", lambda path, size: made.append((path.name, size)) or bytes(size))
    cache = thumbnails.Thumbnails(max_bytes=1000)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    assert cache.cached(a, 400) is None
    assert cache.make(a, 400) == bytes(400) and cache.cached(a, 400) == bytes(400)
    cache.make(b, 400)
    cache.cached(a, 400)  # a used after b
    cache.make(b, 300)  # 1100 bytes: the least recently used goes, b at 400
    assert cache.cached(b, 400) is None and cache.cached(a, 400) and cache.cached(b, 300)
    assert made == [("a.jpg", 400), ("b.jpg", 400), ("b.jpg", 300)]
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        url = c.post("/api/concepts", data={"name": "mug"}, files=photo_files(png(photo("coffee")))
                     ).json()["photos"][0]["url"]
        made.clear()
        assert [c.get(url, params={"size": 160}).status_code for _ in range(3)] == [200, 200, 200]
        assert len(made) == 1  # the second and third visit: the first's JPEG


def test_a_cards_photo_is_made_while_the_model_is_busy_and_is_404_if_forgotten_meanwhile(tmp_path, monkeypatch):
    # The page's first visit made every card's photo under the model's lock (50 phone photos held it 1.8 s): a
    # question or a recognition waited for work that needs no model
    import threading

    import edge_rap.serve.thumbnails as thumbnails

    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        url = c.post("/api/concepts", data={"name": "mug"}, files=photo_files(png(photo("coffee")))
                     ).json()["photos"][0]["url"]
        started, release = hold_recognition(live, monkeypatch, most_s=60)
        answers = []

        def busy() -> None:
            with live.client() as other:
                answers.append(other.post("/api/recognize", files=photo_files(png(photo("rocket")))).status_code)

        thinking = threading.Thread(target=busy)
        thinking.start()
        try:
            assert started.wait(10)  # the model's lock is held from now until released
            r = c.get(url, params={"size": 160}, timeout=10)
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        finally:
            release.set()
            thinking.join()
        assert answers == [200]
        make = thumbnails.thumbnail_jpeg

        def forgotten_meanwhile(path, size):
            made = make(path, size)
            live.home.forget("mug")
            return made

        monkeypatch.setattr(thumbnails, "thumbnail_jpeg", forgotten_meanwhile)
        r = c.get(url, params={"size": 170})
        assert r.status_code == 404 and r.json()["error"] == "no concept named 'mug'"


def test_a_memory_another_model_made_is_the_devices_trouble_said_without_its_path(tmp_path):
    # After an upgrade whose embedder export changed, a photo sent to recognise was answered 422, as if the
    # request were wrong; it is the device's state, which `edge-rap reindex` on the device mends
    import sqlite3

    settings = fake_settings(tmp_path)
    with live_server(settings) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "mug"}, files=photo_files(png(photo("coffee")))).status_code == 201
    with sqlite3.connect(settings.memory / "memory.sqlite") as db:
        db.execute("UPDATE spaces SET fingerprint = 'an-older-export'")
    with live_server(settings) as live, live.client() as c:
        r = c.post("/api/recognize", files=photo_files(png(photo("coffee"))))
    assert r.status_code == 503 and "made by another model" in r.json()["error"]
    assert "reindex" in r.json()["error"] and str(tmp_path) not in r.json()["error"]


def test_asks_answer_and_its_events_are_compact_utf8_json_as_every_answer(tmp_path):
    # the README says every answer is compact UTF-8 JSON: ask's was json.dumps's, spaced and with "\\u00e9"
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        c.post("/api/concepts", data={"name": "café", "description": "the corner café"},
               files=photo_files(png(photo("coffee"))))
        compact = lambda data: json.dumps(data, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
        r = c.post("/api/ask", data={"question": "What is <café>?"})
        assert r.status_code == 200 and "the corner café" in r.json()["answer"]
        assert r.content.decode() == compact(r.json())
        with c.stream("POST", "/api/ask", data={"question": "What is <café>?"},
                      headers={"Accept": "text/event-stream"}) as r:
            data = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
        assert data and all(d == compact(json.loads(d)) for d in data)


def test_a_streamed_answer_with_a_unicode_line_separator_is_one_data_line_for_any_client(tmp_path, monkeypatch):
    """A VLM's U+2028 (NEL, U+2029) was written raw in an event's data line: httpx's `iter_lines`, as Python's
    str.splitlines, ends a line there, and a client's json.loads failed on both halves. JSON's escapes read back the
    very text."""
    from edge_rap.serve import api

    text = "It is <bo>.\u2028Next\x85line\u2029end \x0b\x1c\\u2028"

    def speaking(home, question, frame, on_text):
        on_text(text)
        return {"answer": text}

    monkeypatch.setattr(api, "_household_answer", speaking)
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        with c.stream("POST", "/api/ask", data={"question": "Where is bo?"},
                      headers={"Accept": "text/event-stream"}) as r:
            lines = [line for line in r.iter_lines() if line]
    assert lines[0::2] == ["event: text", "event: answer"], lines
    assert [json.loads(line.removeprefix("data: ")) for line in lines[1::2]] == [{"text": text}, {"answer": text}]


def test_a_name_that_is_not_utf8_in_an_answer_or_error_is_written_as_json_line_writes_it(tmp_path, monkeypatch):
    # UTF-8 with ensure_ascii=False: a note naming a model cache under a folder not UTF-8 ("\udcff") could not be
    # encoded, and /api/ask was a 500 (its stream cut before the answer); the byte is \xff, as in --json
    import edge_rap.generate.assistant as assistant
    from edge_rap.serve import guard, problems

    note = "no VLM loaded (VLM file " + os.fsdecode(b"/media/m\xff/v.gguf") + " not found)"
    monkeypatch.setattr(assistant, "open_vlm", lambda *a, **k: (None, note))
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        c.post("/api/concepts", data={"name": "bo", "description": "our dog"}, files=photo_files(png(photo("coffee"))))
        r = c.post("/api/ask", data={"question": "What is <bo>?"})
        assert r.status_code == 200 and r.json()["note"] == "no VLM loaded (VLM file /media/m\\xff/v.gguf not found)"
        with c.stream("POST", "/api/ask", data={"question": "What is <bo>?"},
                      headers={"Accept": "text/event-stream"}) as r:
            data = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
        assert json.loads(data[-1])["note"] == "no VLM loaded (VLM file /media/m\\xff/v.gguf not found)"
    assert json.loads(problems.error(404, os.fsdecode(b"gone\xfe")).body) == {"error": "gone\\xfe"}
    assert json.loads(guard.error_body(os.fsdecode(b"gone\xfe"))) == {"error": "gone\\xfe"}


def test_ask_answers_in_json_or_as_server_sent_events(live):
    with live.client() as c:
        c.post("/api/concepts", data={"name": "coffee", "description": "a cup of coffee"},
               files=photo_files(png(photo("coffee"))))
        plain = c.post("/api/ask", data={"question": "What is <coffee>?"}).json()
        assert "a cup of coffee" in plain["answer"] and plain["mode"] == "template"
        with c.stream("POST", "/api/ask", data={"question": "What is <coffee>?"},
                      headers={"Accept": "text/event-stream"}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line]
        kinds = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
        assert kinds[-1] == "answer" and set(kinds[:-1]) <= {"text"}
        assert json.loads(lines[-1].removeprefix("data: "))["answer"] == plain["answer"]
        assert c.post("/api/ask", data={"question": " "}).status_code == 422


def test_ask_without_a_photo_is_answered_as_the_voice_is_from_the_newest_frame_and_the_sightings(settings):
    """Beside a daemon, a question without a photo looks at its newest recognised frame; "where is X?" is
    answered from that frame, or from the sightings when X is not in it."""
    from edge_rap.types import Image

    newest = []
    with live_server(settings, fake=False, latest=lambda: newest[0] if newest else None) as live:
        with live.client() as c:
            for name in ("coffee", "rocket"):
                c.post("/api/concepts", data={"name": name}, files=photo_files(png(photo(name))))
            live.home.events.add(Event("left", "rocket", "porch", 1.0, time.time() - 240, Box(0, 0, 10, 10), 0.9))
            where = c.post("/api/ask", data={"question": "Where is the rocket?"}).json()
            assert where["answer"] == "I last saw <rocket> on the porch camera 4 minutes ago."
            assert (where["mode"], where["task"], where["image"]) == ("events", "where", None)
            assert [x["name"] for x in where["concepts"]] == ["rocket"]
            frame = Image(photo("coffee"), "camera")
            newest.append((frame, live.home.recognize(frame)))
            where = c.post("/api/ask", data={"question": "where is coffee?"}).json()
            assert where["answer"].startswith("<coffee> is here") and where["image"] == "camera"
            seen = c.post("/api/ask", data={"question": "What do you see?"}).json()
            assert seen["image"] == "camera" and [x["name"] for x in seen["concepts"]] == ["coffee"]
            asked = c.post("/api/ask", data={"question": "What do you see?"},
                           files=photo_files(png(photo("rocket")))).json()
            assert asked["image"] == "photo" and [x["name"] for x in asked["concepts"]] == ["rocket"]
            with c.stream("POST", "/api/ask", data={"question": "Where is the rocket?"},
                          headers={"Accept": "text/event-stream"}) as r:
                lines = [line for line in r.iter_lines() if line]
            answer = json.loads(lines[-1].removeprefix("data: "))["answer"]
            assert answer.startswith("I last saw <rocket> on the porch camera")


def test_a_json_body_to_a_route_that_takes_form_fields_is_refused_in_words(tmp_path):
    """`curl -d '{"question": "Where is Bo?"}'` was answered "ask needs a question, a photo, or both" (the JSON
    read as a form holds no field), and a JSON concept "name: Field required": the client had sent both."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "al"}, files=photo_files(png(photo("coffee")))).status_code == 201
        for route, body in (("/api/concepts", {"name": "bo"}), ("/api/recognize", {}),
                            ("/api/concepts/al/photos", {})):  # (to a concept not there: 404 before the body)
            r = c.post(route, json=body)
            assert r.status_code == 415, r.text
            assert r.json()["error"] == (f"POST {route} takes form fields (multipart/form-data, as `curl -F "
                                         "field=value` sends them), not application/json")
        assert [(x["name"], x["views"]) for x in c.get("/api/concepts").json()] == [("al", 1)]
        assert c.post("/api/ask", data={"question": "Where is Bo?"}).status_code == 200  # urlencoded, as curl -d


def test_ask_takes_its_question_as_json_too(tmp_path):
    """Issue 12 names `POST /api/ask` and not its body's form: `curl --json '{"question": "..."}'` was refused
    (415: form fields only). A question alone is answered from JSON as from a form, streamed too; any other JSON
    is refused in words, and a photo still goes as a form."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        c.post("/api/concepts", data={"name": "coffee", "description": "a cup of coffee"},
               files=photo_files(png(photo("coffee"))))
        form = c.post("/api/ask", data={"question": "What is <coffee>?"}).json()
        r = c.post("/api/ask", json={"question": "What is <coffee>?"})
        assert r.status_code == 200, r.text
        assert r.json()["answer"] == form["answer"] and "a cup of coffee" in form["answer"]
        with c.stream("POST", "/api/ask", json={"question": "What is <coffee>?"},
                      headers={"Accept": "text/event-stream"}) as r:
            lines = [line for line in r.iter_lines() if line]
        assert json.loads(lines[-1].removeprefix("data: "))["answer"] == form["answer"]
        for body in ({"question": 5}, {"question": "hi", "photo": "x"}, {"qustion": "hi"}, ["hi"], "hi"):
            r = c.post("/api/ask", json=body)
            assert r.status_code == 422 and r.json()["error"].startswith('POST /api/ask takes {"question": "..."}')
        assert c.post("/api/ask", json={"question": " "}).status_code == 422  # as the form's blank question
        assert c.post("/api/ask", json={"question": "x" * 3000}).status_code == 422  # the question's limit
        for raw in (b"{not json", b"\xff\xfe", b"[" * 60_000):
            r = c.post("/api/ask", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json()["error"].startswith("the body is not JSON (")


def test_a_body_that_is_not_json_is_said_alike_by_ask_and_patch(tmp_path):
    # POST /api/ask said "POST /api/ask: the body is not JSON" alone where PATCH named what the parser stopped at
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        as_json = {"Content-Type": "application/json"}
        for raw in (b"{not json", b'{"question": "caf\xe9"}', b"[" * 60_000, b"question=hi"):
            asked = c.post("/api/ask", content=raw, headers=as_json)
            patched = c.patch("/api/concepts/bo", content=raw, headers=as_json)
            assert (asked.status_code, patched.status_code) == (400, 400), (raw[:20], asked.text, patched.text)
            assert asked.json()["error"] == patched.json()["error"] != "the body is not JSON", raw[:20]


def test_an_empty_or_fieldless_json_body_is_422_naming_the_fields_on_ask_and_patch(tmp_path):
    # an empty body was 400 "not JSON" on ask and 422 naming no field on PATCH; a PATCH of {} a 200 changing nothing
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo", "category": "dog"},
                      files=photo_files(png(photo("coffee")))).status_code == 201
        as_json = {"Content-Type": "application/json"}
        for raw in (b"", b"{}"):
            asked = c.post("/api/ask", content=raw, headers=as_json)
            assert asked.status_code == 422, (raw, asked.text)
            assert asked.json()["error"].startswith('POST /api/ask takes {"question": "..."}')
            patched = c.patch("/api/concepts/bo", content=raw, headers=as_json)
            assert patched.status_code == 422 and patched.json()["error"] == \
                "PATCH /api/concepts/bo takes a JSON object with any of name, description, category; none was sent"
        assert c.get("/api/concepts/bo").json()["category"] == "dog"
        patch = c.get("/openapi.json").json()["paths"]["/api/concepts/{name}"]["patch"]["requestBody"]
        assert patch["required"] and c.get("/openapi.json").json()["components"]["schemas"]["ConceptPatch"][
            "minProperties"] == 1


def test_a_route_on_a_concept_not_there_is_404_whatever_its_body(tmp_path):
    # PATCH `{}`, a misspelt field, a form, or add-photos without a photo, to a name not there was 422 or 415 on the
    # body: the client learnt of its body, not that there is no such concept; and a body that is no JSON, or no
    # form the parser can read, was 400 (FastAPI reads the body before any dependency), an upload read whole first
    garbled = {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        bodies = [{"json": {}}, {"json": {"descripton": "x"}}, {"json": {"name": None}}, {"content": b""},
                  {"data": {"description": "x"}}, {"content": b"{not json"}, {"content": b"{bad", "headers": {
                      "Content-Type": "application/json"}}, garbled]
        for body in bodies:
            r = c.patch("/api/concepts/nobody", **body)
            assert (r.status_code, r.json()) == (404, {"error": "no concept named 'nobody'"}), (body, r.text)
        for body in ({"data": {"box": "1,2,3,4"}}, {"json": {"photo": "x"}}, garbled):
            r = c.post("/api/concepts/nobody/photos", **body)
            assert (r.status_code, r.json()) == (404, {"error": "no concept named 'nobody'"}), (body, r.text)
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        assert c.patch("/api/concepts/bo", json={}).status_code == 422  # there: its body judged, as before
        assert c.patch("/api/concepts/bo", content=b"{not json").status_code == 400
        assert c.post("/api/concepts/bo/photos", **garbled).status_code == 400


def test_a_path_with_a_trailing_slash_is_404_saying_the_path_without_not_a_redirect(tmp_path):
    # `PATCH /api/concepts/bo/` was 307 to /api/concepts/bo (Starlette's redirect_slashes): a client that follows it
    # sends its body again (an upload's too), and curl, which does not, got an empty answer
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        for method, path, body in (("PATCH", "/api/concepts/bo/", {"json": {"description": "x"}}),
                                   ("POST", "/api/concepts/", {"data": {"name": "al"}}), ("GET", "/api/concepts/", {}),
                                   ("POST", "/api/concepts/bo/photos/", {"files": photo_files(png(photo("coffee")))})):
            r = c.request(method, path, **body)
            assert (r.status_code, r.json()) == (404, {"error": f"{method} {path}: no such route; without its "
                                                                f"trailing '/': {path[:-1]}"}), r.text
        assert c.get("/api/nosuch/").json() == {"error": "Not Found"}  # no route without it either
        assert [(k["name"], k["description"], k["views"]) for k in c.get("/api/concepts").json()] == [("bo", "", 1)]


def test_ask_reads_a_body_without_a_media_type_as_json_and_publishes_its_json_body(tmp_path):
    """Python's `requests.post(url, data=json.dumps({"question": ...}))` sends no Content-Type: no form can be read
    from such a body, and it was answered "ask needs a question, a photo, or both". The published schema gave the
    form alone, so neither a client made from it nor the fuzz test ever sent the JSON."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        c.post("/api/concepts", data={"name": "coffee", "description": "a cup of coffee"},
               files=photo_files(png(photo("coffee"))))
        r = c.post("/api/ask", content=json.dumps({"question": "What is <coffee>?"}))
        assert r.status_code == 200 and "a cup of coffee" in r.json()["answer"], r.text
        r = c.post("/api/ask", content=b"question=What is coffee?")
        assert r.status_code == 400 and r.json()["error"].startswith("the body is not JSON (")
        assert c.post("/api/ask").json()["error"] == "ask needs a question, a photo, or both"  # no body at all
        body = c.get("/openapi.json").json()["paths"]["/api/ask"]["post"]["requestBody"]["content"]
        assert set(body) == {"multipart/form-data", "application/json"}
        assert body["application/json"]["schema"]["required"] == ["question"]


def test_a_form_to_the_route_that_takes_json_is_refused_in_words(tmp_path):
    # `curl -X PATCH -d description=...` (a form) was answered "request: Input should be a valid dictionary or
    # object to extract fields from"
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        r = c.patch("/api/concepts/bo", data={"description": "our dog"})
        assert r.status_code == 415 and r.json()["error"].startswith(
            "PATCH /api/concepts/bo takes a JSON object (application/json, as `curl --json")
        assert r.json()["error"].endswith("not application/x-www-form-urlencoded")
        assert c.get("/api/concepts/bo").json()["description"] == ""
        assert c.patch("/api/concepts/bo", json={"description": "our dog"}).json()["description"] == "our dog"


def test_json_sent_without_a_content_type_is_read_as_json(tmp_path):
    """`requests.patch(url, data=json.dumps(...))` sends no Content-Type: it was answered "request: Input should be
    a valid dictionary or object to extract fields from", as POST /api/ask's question once was."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        bare = {"content-type": ""}  # no media type said
        r = c.request("PATCH", "/api/concepts/bo", content=b'{"description": "our dog"}', headers=bare)
        assert r.status_code == 200 and r.json()["description"] == "our dog"
        r = c.request("PATCH", "/api/concepts/bo", content=b"description=a cat", headers=bare)
        assert r.status_code == 400 and r.json()["error"].startswith("the body is not JSON")
        assert c.get("/api/concepts/bo").json()["description"] == "our dog"


def test_a_patch_whose_body_is_not_json_is_400_as_asks_and_the_readme_say(tmp_path):
    """The README answers a body that is no JSON 400, as POST /api/ask did: PATCH said 422 for a malformed one, and
    400 "There was an error parsing the body" for one not UTF-8 (a phone's Latin-1 text) or nested too deep."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        as_json = {"Content-Type": "application/json"}
        for raw, said in ((b"{not json", "at character 1"), ('{"description": "caf\xe9"}'.encode("latin-1"),
                                                              "not UTF-8"), (b"[" * 60_000, "nested")):
            r = c.patch("/api/concepts/bo", content=raw, headers=as_json)
            assert r.status_code == 400, r.text
            assert r.json()["error"].startswith("the body is not JSON (") and said in r.json()["error"], r.text
        assert c.get("/api/concepts/bo").json()["description"] == ""


def test_a_field_the_route_does_not_take_is_refused_and_nothing_changes(tmp_path):
    """A misspelt `descripton` was dropped without a word: the concept was made with no description (the
    README promises 422 for a field the route does not know, as PATCH's JSON got); so was a query's `nmae`."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        r = c.post("/api/concepts", data={"name": "bo", "descripton": "our dog"},
                   files=photo_files(png(photo("coffee"))))
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "descripton: not a field of POST /api/concepts (it takes name, photo, " \
                                    "description, category, box)"
        assert c.get("/api/concepts").json() == []
        assert c.post("/api/ask", data={"question": "Where is Bo?", "foto": "x"}).status_code == 422
        assert c.post("/api/ask", data={"question": "Where is Bo?"}).status_code == 200
        r = c.get("/api/events", params={"nmae": "bo"})  # answered every event, as if no name were given
        assert r.status_code == 422 and r.json()["error"] == "nmae: not a parameter of GET /api/events (it " \
                                                             "takes since, until, name)"
        assert c.get("/api/concepts", params={"x": "1"}).status_code == 422
        assert c.get("/api/events", params={"since": "1d"}).status_code == 200
        assert c.get("/api/events", params={"since": "x"}).status_code == 422


def test_a_query_parameter_the_route_does_not_take_is_422_before_the_concept_or_the_body_is_judged(tmp_path):
    """The URL is judged whole first, then the concept it names, then the body: `?x=1` on a concept not there was 422
    on a GET or DELETE but 404 on a PATCH or an upload, and on one there, 400 for a body that is no JSON or form."""
    garbled = {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}
    not_json = {"content": b"{bad", "headers": {"Content-Type": "application/json"}}
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        for method, path, body in (("GET", "/api/concepts/nobody", {}), ("DELETE", "/api/concepts/nobody", {}),
                                   ("PATCH", "/api/concepts/nobody", {"json": {"description": "x"}}),
                                   ("POST", "/api/concepts/nobody/photos",
                                    {"files": photo_files(png(photo("astronaut")))}),
                                   ("PATCH", "/api/concepts/bo", not_json),
                                   ("POST", "/api/concepts/bo/photos", garbled),
                                   ("POST", "/api/concepts", garbled), ("POST", "/api/recognize", garbled),
                                   ("POST", "/api/ask", not_json), ("DELETE", "/api/concepts/bo", {})):
            r = c.request(method, path, params={"x": "1"}, **body)
            assert (r.status_code, r.json()) == (422, {"error": f"x: not a parameter of {method} {path} (it takes "
                                                                "none)"}), (method, path, r.text)
        assert [(k["name"], k["views"]) for k in c.get("/api/concepts").json()] == [("bo", 1)]


def test_a_path_or_query_not_utf8_is_refused_not_read_as_another_name(tmp_path):
    """The server decodes %-escapes that are not UTF-8 as U+FFFD: `DELETE /api/concepts/%C3` forgot the concept named
    '\ufffd', and an older client's Latin-1 `caf%E9` was told "no concept named 'caf\ufffd'". Now 400, in words."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        made = c.post("/api/concepts", data={"name": "\ufffd"}, files=photo_files(png(photo("coffee"))))
        assert made.status_code == 201
        for method, target, part in (("DELETE", "/api/concepts/%C3", "path"), ("GET", "/api/concepts/caf%E9", "path"),
                                     ("PATCH", "/api/concepts/%FF", "path"), ("GET", "/api/events?name=%FF", "query")):
            r = c.request(method, target, json={"description": "x"} if method == "PATCH" else None)
            said = target.split("?")[0]
            assert (r.status_code, r.json()) == (400, {"error": f"{method} {said}: its {part} is not UTF-8 once its "
                                                                "%-escapes are decoded (percent-encode names as UTF-8, "
                                                                "as a browser does)"}), (method, target, r.text)
        assert [(k["name"], k["description"]) for k in c.get("/api/concepts").json()] == [("\ufffd", "")]
        assert c.get("/api/concepts/%EF%BF%BD").status_code == 200  # (its name as UTF-8)


def test_a_name_with_an_encoded_slash_is_refused_as_a_name_with_a_slash_not_routed_as_two(tmp_path):
    """`/api/concepts/a%2Fb` was a bare "Not Found" (the path decoded before routing: two segments), where `a%5Cb` was
    the name's own 422; and `bo%2Fphotos` was routed as the photos of <bo>: an upload added to it."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        slash = {"error": "concept name 'a/b' has a character that is not allowed: '/'"}
        for method, path, body in (("GET", "/api/concepts/a%2Fb", {}), ("DELETE", "/api/concepts/a%2fb", {}),
                                   ("PATCH", "/api/concepts/a%2Fb", {"json": {"description": "x"}}),
                                   ("POST", "/api/concepts/a%2Fb/photos",
                                    {"files": photo_files(png(photo("astronaut")))}),
                                   ("GET", "/api/concepts/a%2Fb/photos/1", {})):
            r = c.request(method, path, **body)
            assert (r.status_code, r.json()) == (422, slash), (method, path, r.text)
        r = c.post("/api/concepts/bo%2Fphotos", files=photo_files(png(photo("astronaut"))))  # no route: not bo's photos
        assert (r.status_code, r.headers["allow"], r.json()) == (405, "DELETE, GET, HEAD, PATCH", {
            "error": "POST /api/concepts/bo%2Fphotos: a method this route does not take (it takes DELETE, GET, HEAD, "
                     "PATCH)"})
        r = c.delete("/api/concepts/bo%2Fphotos%2F1")
        assert r.status_code == 422 and r.json()["error"].startswith("concept name 'bo/photos/1' has"), r.text
        r = c.get("/api/concepts/a%2Fb/", params={"x": "1"})
        assert r.json() == {"error": "GET /api/concepts/a%2Fb/: no such route; without its trailing '/': "
                                     "/api/concepts/a%2Fb"}, r.text
        r = c.get("/api/concepts/a%2Fb", params={"x": "1"})
        assert r.json() == {"error": "x: not a parameter of GET /api/concepts/a%2Fb (it takes none)"}, r.text
        assert [(k["name"], k["views"]) for k in c.get("/api/concepts").json()] == [("bo", 1)]


def test_a_path_with_an_encoded_slash_and_a_question_mark_is_said_whole(tmp_path):
    """A name with a '/' and a '?', '#' or '\\' (which the said path keeps encoded) was said garbled: the name's end cut
    again from the encoded path, `a%2Fb%3Fc` as `a%2Fb?cFc`."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        for sent, said in (("a%2Fb%3Fc", "a%2Fb%3Fc"), ("a%2Fb%23c", "a%2Fb%23c"), ("a%2Fb%5Cc", "a%2Fb%5Cc"),
                           ("a%3Fb%2F", "a%3Fb%2F")):
            r = c.delete(f"/api/concepts/{sent}", params={"x": "1"})
            assert r.json() == {"error": f"x: not a parameter of DELETE /api/concepts/{said} (it takes none)"}, r.text
            r = c.put(f"/api/concepts/{sent}/photos")
            assert r.json()["error"].startswith(f"PUT /api/concepts/{said}/photos: a method"), r.text
            r = c.get(f"/api/concepts/{sent}/")
            assert r.json() == {"error": f"GET /api/concepts/{said}/: no such route; without its trailing '/': "
                                         f"/api/concepts/{said}"}, r.text


def test_a_query_parameter_sent_twice_is_refused_as_a_form_field_is(tmp_path):
    """`?name=bo&name=cat` answered cat's events alone, the first name dropped without a word, where a form field
    or JSON key sent twice is 422 (the README: one sent twice where the route takes one)."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        made = c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee"))))
        assert made.status_code == 201
        r = c.get("/api/events", params=[("name", "bo"), ("name", "bo")])
        assert r.status_code == 422 and r.json()["error"] == "name: sent 2 times; GET /api/events takes one"
        url = made.json()["photos"][0]["url"]
        assert c.get(url, params=[("size", "64"), ("size", "16")]).status_code == 422
        assert c.get(url, params={"size": "64"}).status_code == 200
        assert c.get("/api/events", params={"name": "bo"}).status_code == 200


def test_a_photo_sent_as_text_not_as_a_file_is_refused_in_words(tmp_path):
    # `curl -F photo=<bo.jpg` ('<' for '@': the photo's bytes as a text field) was answered "photo: Value error,
    # Expected UploadFile, received: <class 'str'>"
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        said = "text, not a file: send the photo as a file (curl -F photo=@photo.jpg, with '@')"
        for route, data in (("/api/recognize", {}), ("/api/concepts", {"name": "bo"}),
                            ("/api/ask", {"question": "what is it?"})):
            r = c.post(route, data={**data, "photo": "not a file"})
            assert r.status_code == 422 and r.json()["error"] == f"photo: {said}", r.text
        # a phone's photo (over Starlette's 1 MB for a text field) was 400 "Part exceeded maximum size of 1024KB."
        large = os.urandom(3 << 20)
        said = "a photo sent as text, not as a file? send the photo as a file (curl -F photo=@photo.jpg, with '@')"
        for route, data in (("/api/recognize", {}), ("/api/concepts", {"name": "bo"})):
            r = c.post(route, data=data, files={"photo": (None, large)})  # (no file name: a text field)
            assert r.status_code == 422 and r.json()["error"].endswith(said), r.text
        assert c.get("/api/concepts").json() == []


def test_a_form_cut_before_its_closing_boundary_is_said_so_and_nothing_is_done(tmp_path):
    # An upload cut off: the form's parser kept the fields before the cut, so it was 422 "photo: empty or not sent",
    # and a concept was made without the description that came after its photo.
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        request = c.build_request("POST", "/api/concepts", data={"name": "bo"},
                                  files=[*photo_files(png(photo("coffee"))), ("description", (None, b"our dog"))])
        body, head = request.read(), {"content-type": request.headers["content-type"]}
        assert body.index(b"our dog") > body.index(b"\x89PNG")  # (the description after the photo)
        said = "the form ends before its closing boundary (the upload cut off?); nothing was done: send it again"
        for cut in (body.index(b"our dog") + 3, body.index(b"\x89PNG") + 100, len(body) - 3):
            r = c.post("/api/concepts", content=body[:cut], headers=head)
            assert r.status_code == 400 and r.json() == {"error": said}, (cut, r.text)
        assert c.get("/api/concepts").json() == []
        assert c.post("/api/concepts", content=body, headers=head).status_code == 201
        assert [k["description"] for k in c.get("/api/concepts").json()] == ["our dog"]


def test_a_form_with_a_preamble_before_its_first_boundary_is_taken(tmp_path):
    # RFC 2046 lets a multipart body start with a preamble, to be ignored: it was 400 "the body is no multipart form
    # the parser can read (Expected boundary character 45, ...)"
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        request = c.build_request("POST", "/api/concepts", data={"name": "bo", "description": "our dog"},
                                  files=photo_files(png(photo("coffee"))))
        body, head = b"This is a preamble; --not the boundary.\r\n" + request.read(), dict(request.headers)
        head.pop("content-length")

        def chunks(data: bytes, size: int = 7):  # sent chunked: the first delimiter spans two of them
            yield from (data[i:i + size] for i in range(0, len(data), size))

        said = "the form ends before its closing boundary (the upload cut off?); nothing was done: send it again"
        r = c.post("/api/concepts", content=chunks(body[:-10]), headers=head)  # cut off still said so
        assert r.status_code == 400 and r.json() == {"error": said}, r.text
        assert c.post("/api/concepts", content=body[:30], headers=head).status_code == 400  # a preamble alone
        assert c.get("/api/concepts").json() == []
        r = c.post("/api/concepts", content=chunks(body), headers=head)
        assert r.status_code == 201, r.text
        assert [(k["name"], k["description"], k["views"]) for k in c.get("/api/concepts").json()] == \
            [("bo", "our dog", 1)]


def test_a_form_the_parser_cannot_read_is_logged_naming_its_route(tmp_path, caplog):
    # serve's log said "edge-rap: Expected boundary character 45, got 103 at index 2", the parser's words alone:
    # which request, from which client, was not said
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        r = c.post("/api/concepts", content=b"--xyz\r\nbad header\r\n\r\nx\r\n--xyz--\r\n",
                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 400 and r.json()["error"].startswith("the body is no multipart form the parser can read ("
                                                                 "Found invalid character 32 in header at 10)")
    assert warnings_said(caplog) == [f"POST /api/concepts: {r.json()['error']}"]


def test_the_boundary_inside_a_line_is_no_delimiter_in_a_preamble_or_a_field(tmp_path):
    # a delimiter starts a line (RFC 2046), as the form's parser finds it: "--BOUNDARY" inside a preamble's line was
    # taken for the first one (400 "Did not find CR at end of boundary"), and "--BOUNDARY--" inside a field's text
    # for the closing one, so that a form cut after it was not said cut off (422 "photo: empty or not sent")
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        request = c.build_request("POST", "/api/concepts", data={"name": "bo", "description": "see --BOUNDARY--"},
                                  files=photo_files(png(photo("coffee"))))
        boundary = request.headers["content-type"].split("boundary=")[1]
        body = request.read().replace(b"--BOUNDARY--", f"--{boundary}--".encode())
        head = {**request.headers, "content-length": str(len(body))}
        r = c.post("/api/concepts", content=body[:-10], headers={**head, "content-length": str(len(body) - 10)})
        assert r.status_code == 400 and "ends before its closing boundary" in r.json()["error"], r.text
        assert c.get("/api/concepts").json() == []
        preamble = f"This preamble names --{boundary}-- and --{boundary} inside its line.\r\n".encode()
        head["content-length"] = str(len(preamble) + len(body))
        r = c.post("/api/concepts", content=preamble + body, headers=head)
        assert r.status_code == 201, r.text
        assert (r.json()["description"], len(r.json()["photos"])) == (f"see --{boundary}--", 1)


def test_the_form_is_passed_on_from_its_first_delimiter_wherever_the_chunks_split_it():
    # the guard holds back what comes before the delimiter that starts the form, a line "--BOUNDARY", which may span
    # two chunks, at any byte
    import asyncio

    from edge_rap.serve.guard import BodyLimit

    form = b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nbo\r\n--xyz--\r\n'
    body = b"a preamble, --xyz, --xyz-- and --xy in its line\r\n" + form
    scope = {"type": "http", "headers": [(b"content-type", b'multipart/form-data; boundary="xyz"; charset=utf-8')]}

    async def passed(chunks: list[bytes]) -> bytes:
        messages = [{"type": "http.request", "body": b, "more_body": i < len(chunks) - 1} for i, b in enumerate(chunks)]
        got = []

        async def receive():
            return messages.pop(0)

        async def app(scope, receive, send):
            while True:
                message = await receive()
                got.append(message.get("body", b""))
                if not message.get("more_body"):
                    return

        async def send(message):
            raise AssertionError(f"the guard answered {message}")

        await BodyLimit(app, limit=2**20, fields=2**10)(scope, receive, send)
        return b"".join(got)

    for at in range(len(body) + 1):
        assert asyncio.run(passed([body[:at], body[at:]])) == form, at
    assert asyncio.run(passed([body[i:i + 1] for i in range(len(body))])) == form
    assert asyncio.run(passed([form])) == form


def test_bytes_pillow_takes_by_two_bytes_alone_are_an_image_only_where_its_header_follows(tmp_path):
    # Pillow takes "BM..." for a BMP and "P1..." for a PBM by those bytes alone: text beginning "P1" was 422 "corrupt
    # or truncated image", and a BMP cut short in its first header 415 "not an image".
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        for data, status, said in ((b"P1 hello, world", 415, "not an image"), (b"BMW is a car", 415, "not an image"),
                                   (b"BM\x46\0\0\0\0\0\0\0\x36\0", 422, "corrupt or truncated image"),
                                   (b"BM" + bytes(16), 422, "corrupt or truncated image"),  # (its header type 0)
                                   (b"P1\n2", 422, "corrupt or truncated image")):
            r = c.post("/api/recognize", files=photo_files(data))
            error = r.json()["error"]
            assert r.status_code == status and error.startswith(f"photo (p0.png): {said}"), (data, r.text)
            assert "\n" not in error, (data, r.text)


def test_an_empty_text_field_or_one_sent_as_a_file_is_refused_in_words(tmp_path):
    # `-F name=` was "name: Field required" (the CLI: "concept name is empty"), and `curl -F name=@x.jpg` pydantic's
    # "name: Input should be a valid string"
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        for data in ({"name": ""}, {}):
            r = c.post("/api/concepts", data=data, files=photo_files(png(photo("coffee"))))
            assert r.status_code == 422 and r.json()["error"] == "name: empty or not sent", r.text
        for route, field, data in (("/api/concepts", "name", {}), ("/api/concepts", "description", {"name": "bo"}),
                                   ("/api/ask", "question", {})):
            files = [*photo_files(png(photo("coffee"))), (field, ("x.jpg", b"\xff\xd8", "image/jpeg"))]
            r = c.post(route, data=data, files=files)
            said = f"{field}: a file, not text: send it as text (curl -F {field}=..., without '@')"
            assert r.status_code == 422 and r.json()["error"] == said, r.text
        assert c.get("/api/concepts").json() == []


def test_a_field_sent_twice_where_the_route_takes_one_is_refused(tmp_path):
    # two photos to /api/recognize were answered for the last alone, the first dropped without a word
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        two = photo_files(png(photo("coffee")), png(photo("rocket")))
        r = c.post("/api/recognize", files=two)
        assert r.status_code == 422 and r.json()["error"] == "photo: sent 2 times; POST /api/recognize takes one"
        r = c.post("/api/concepts", data={"name": ["bo", "mochi"]}, files=two[:1])
        assert r.status_code == 422 and r.json()["error"].startswith("name: sent 2 times")
        assert c.get("/api/concepts").json() == []
        assert c.post("/api/concepts", data={"name": "bo"}, files=two).status_code == 201  # photos: as many as sent
        assert c.post("/api/recognize", files=two[:1]).status_code == 200


def test_a_json_key_given_twice_is_refused_as_a_field_sent_twice_is(tmp_path):
    # Python's parser kept the last and dropped the other without a word: which description was meant?
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        as_json = {"content-type": "application/json"}
        r = c.patch("/api/concepts/bo", content=b'{"description": "our dog", "description": "a cat"}', headers=as_json)
        assert r.status_code == 422
        assert r.json()["error"] == "description: sent 2 times; PATCH /api/concepts/bo takes one"
        assert c.get("/api/concepts/bo").json()["description"] == ""
        r = c.post("/api/ask", content=b'{"question": "is bo here?", "question": "hi"}', headers=as_json)
        assert r.status_code == 422 and r.json()["error"] == "question: sent 2 times; POST /api/ask takes one"
        assert c.patch("/api/concepts/bo", content=b"", headers=as_json).status_code == 422  # no body: said, no 500


def test_stats_say_whether_a_daemon_runs_and_pass_its_figures(tmp_path):
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.get("/api/stats").json()["daemon"] is False
    figures = {"fps": 4.5, "frames_read": 10, "frames_processed": 8, "frames_dropped": 1,
               "stages_ms": {"embed": 30.5}}
    with live_server(fake_settings(tmp_path), stats=lambda: figures) as live, live.client() as c:
        assert c.get("/api/stats").json() == {"daemon": True, **figures}


def test_an_answer_carries_every_character_of_its_text_but_a_byte_of_a_name_not_utf8():
    """TextJSONResponse copies an answer through `text_only`, which rewrites a lone surrogate (a byte of a file name
    that is not UTF-8: no character UTF-8 can carry) and nothing else: the line breaks and tabs of a VLM's answer, a
    control character, an old memory's name with U+2028, an emoji, an accent and text that reads `\\xff` itself reach
    the client as sent, JSON's escapes read back to the very string."""
    from edge_rap.serve.responses import TextJSONResponse

    text = ("line one\nline two\r\n\ttab \x00\x07\x1b[2J\x7f\x85 <bo\u2028x> \u2029 \u202e \U0001F436 Zoë 李 a\\xffb"
            " \ufeff")
    value = {"answer": text, "concepts": [{"name": "bo\u2028x", "box": (1, 2)}], text: [text]}
    body = TextJSONResponse(value).body
    assert json.loads(body) == {**value, "concepts": [{"name": "bo\u2028x", "box": [1, 2]}]}
    assert body.decode().count("\n") == 0  # one line: an SSE event's data
    byte = os.fsdecode(b"m\xff")
    assert json.loads(TextJSONResponse({"note": text + byte}).body) == {"note": text + "m\\xff"}


def test_an_answer_with_a_schema_is_written_by_it_as_fastapi_writes_one(tmp_path):
    # the app's default response class (TextJSONResponse, for /api/ask's notes) took the schema's own writer from
    # every route with a response_model: 4 times the time over 10,000 events, 1e-05 for 0.00001, and a figure that is
    # not a number a 500 where it was null
    from pydantic import TypeAdapter

    from edge_rap.serve import schemas

    figures = {"fps": float("nan"), "stages_ms": {"embed": 0.00001, "detect": float("inf")}}
    with live_server(fake_settings(tmp_path), stats=lambda: figures) as live, live.client() as c:
        r = c.get("/api/stats")
        assert r.status_code == 200 and r.json() == {"daemon": True, "fps": None, "stages_ms": {"embed": 0.00001,
                                                                                               "detect": None}}
        assert r.content == TypeAdapter(schemas.Stats).dump_json(schemas.Stats(daemon=True, **figures),
                                                                 exclude_none=True)


def test_pair_prints_a_qr_code_url_and_token(settings, run):
    rc, out, err = run("pair")  # a mistyped --memory: refused, no folder made to hold a token
    assert rc == 2 and "no such memory folder" in err and not settings.memory.exists()
    settings.memory.mkdir()  # as `serve` leaves it
    rc, out, _ = run("pair")
    assert rc == 0
    token = (settings.memory / "api-token").read_text().strip()
    assert f"token: {token}" in out and "url:   http://127.0.0.1:8765/" in out
    assert "\u2588" in out or "\u2580" in out  # the QR code's blocks
    rc, out, _ = run("pair", "--json", "--host", "0.0.0.0", "--port", "9000")
    paired = json.loads(out)
    assert paired["token"] == token and paired["url"].endswith(":9000/") and "0.0.0.0" not in paired["url"]
    assert json.loads(run("pair", "--json", "--host", "fe80::1%eth0")[1])["url"].startswith("http://[fe80::1%eth0]")
    for host in ("a b", "http://10.0.0.5", "10.0.0.5/x"):  # a URL the phone could not open
        rc, _, err = run("pair", "--host", host)
        assert rc == 2 and err.strip().endswith("give a host name or address, such as 0.0.0.0 or 192.168.1.20")
        rc, _, err = run("serve", "--host", host)
        assert rc == 2 and f"--host {host!r}" in err


def test_an_impossible_ipv4_address_is_refused_in_one_line_before_anything_else(settings, run):
    # `pair --host 999.1.1.1` was taken with a warning only; `serve --host 256.0.0.1` warned of serving without TLS,
    # then said "Name or service not known"
    settings.memory.mkdir()
    # 0x7f.1 and 0x7f000001, hex, were bound as 127.0.0.1 with a warning of serving without TLS, and put in the URL
    for host in ("999.1.1.1", "256.0.0.1", "1.2.3", "010.0.0.1", "0x7f.1", "0x7f000001", "robot.1"):
        for command in ("pair", "serve"):
            rc, out, err = run(command, "--host", host)
            assert rc == 2 and out == "" and err == f"edge-rap: --host {host!r}: not an IPv4 address (four numbers " \
                f"of 0 to 255 without leading zeros, such as 192.168.1.20)\n", (command, err)
    assert not (settings.memory / "api-token").exists()
    for host in ("10.0.0.5", "3com.example", "1e100.net", "0xc0ffee.example", "::1", "::ffff:10.0.0.5",
                 "fe80::1%eth0"):  # an address, a name, IPv6: taken
        assert run("pair", "--json", "--host", host)[0] == 0, host
    # [::1], as a URL writes it and `run --serve [::1]:8765` takes it, was "give a host name or address"
    rc, out, _ = run("pair", "--json", "--host", "[::1]")
    assert rc == 0 and json.loads(out)["url"] == "http://[::1]:8765/"


def test_pair_draws_its_code_without_block_characters_where_the_terminal_has_none(settings, monkeypatch):
    # a Latin-1 console (or PYTHONIOENCODING=ascii) was a UnicodeEncodeError's traceback, no url and no token
    import io

    from edge_rap import cli

    settings.memory.mkdir()
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("TERM", "xterm")  # (a dumb one draws none: the next test)
    assert cli.main(["pair", "--memory", str(settings.memory)]) == 0
    terminal.flush()
    out = terminal.buffer.getvalue().decode("latin-1")
    token = (settings.memory / "api-token").read_text().strip()
    assert "\x1b[7m  " in out and "\\u2588" not in out  # inverse-video spaces, every terminal's, not escaped blocks
    assert f"token: {token}" in out


@pytest.fixture
def served(monkeypatch) -> None:
    """A server answers where serve.json says (none does in a test): pair's only warnings are those asked about."""
    monkeypatch.setattr("edge_rap.serve.pairing.answering", lambda where: True)


def test_pair_warns_when_no_server_answers_where_the_code_points(settings, run):
    # a code shown while no server ran opened a page that never loaded, on the phone, with nothing said why
    import socket

    from edge_rap.serve.pairing import Listening, record

    settings.memory.mkdir()
    with socket.socket() as closed, socket.socket() as open_:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused at once
        open_.bind(("127.0.0.1", 0))
        open_.listen()
        for port, answered in ((closed.getsockname()[1], False), (open_.getsockname()[1], True)):
            rc, out, err = run("pair", "--json", "--port", port)
            assert rc == 0 and json.loads(out)["url"] == f"http://127.0.0.1:{port}/"
            warned = f"edge-rap: warning: no server answers on port {port} now: start `edge-rap serve`"
            assert err.startswith(warned) != answered and err.count("\n") == (not answered), err
        record(settings.memory, Listening("0.0.0.0", open_.getsockname()[1], False))  # serve --host 0.0.0.0
        assert run("pair", "--json", "--host", "192.0.2.1")[2] == ""  # asked where it listens, not of the name


def test_pair_on_a_dumb_terminal_without_blocks_prints_no_ansi_codes(settings, monkeypatch):
    # TERM=dumb (an editor's shell, a log) with no block characters printed the QR code as raw "\x1b[7m" codes
    import io

    from edge_rap import cli

    settings.memory.mkdir()
    monkeypatch.setenv("TERM", "dumb")
    for encoding, drawn in (("latin-1", False), ("utf-8", True)):
        terminal = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
        monkeypatch.setattr(sys, "stdout", terminal)
        assert cli.main(["pair", "--memory", str(settings.memory)]) == 0
        terminal.flush()
        out = terminal.buffer.getvalue().decode(encoding)
        assert "\x1b" not in out and ("\u2588" in out) == drawn and "token: " in out
        assert ("no QR code: this terminal draws neither" in out) != drawn


def test_pair_names_a_loopback_link_not_a_loopback_server(settings, run, served):
    # `pair --host 127.0.0.1` beside `serve --host 0.0.0.0` said "the server listens on this machine only"
    from edge_rap.serve.pairing import Listening, record

    settings.memory.mkdir()
    for listening, host, note in (
            ("0.0.0.0", "127.0.0.1", "note: 127.0.0.1 is this machine's own address, which a phone cannot open; "
                                     "pair without --host"),
            ("127.0.0.1", "192.168.1.20", "note: the server listens on this machine only;"),
            ("0.0.0.0", "192.168.1.20", None)):
        record(settings.memory, Listening(listening, 8765, False))
        rc, out, _ = run("pair", "--host", host)
        assert rc == 0 and (note in out if note else "note:" not in out), (listening, host, out)


def test_pair_warns_of_a_host_name_the_server_would_refuse(settings, run, monkeypatch, served):
    # `pair --host robot.example` showed a QR code whose page the phone was then refused, 421
    settings.memory.mkdir()
    monkeypatch.setenv("EDGE_RAP_SERVE_HOSTS", "robot.lan")
    rc, out, err = run("pair", "--json", "--host", "robot.example")
    assert rc == 0 and json.loads(out)["url"] == "http://robot.example:8765/"
    assert err.startswith("edge-rap: warning: the server answers no request for 'robot.example' (421)")
    for answered in ("robot.lan", "ROBOT.lan", "localhost", "192.168.1.20", "0.0.0.0"):
        assert run("pair", "--json", "--host", answered)[2] == "", answered
    # this shell's bad EDGE_RAP_SERVE_HOSTS (serve's may be another's) is a warning: it refused to pair at all
    monkeypatch.setenv("EDGE_RAP_SERVE_HOSTS", "robot lan")
    rc, out, err = run("pair", "--json", "--host", "192.168.1.20")
    assert rc == 0 and json.loads(out)["url"] == "http://192.168.1.20:8765/"
    assert err.startswith("edge-rap: warning: EDGE_RAP_SERVE_HOSTS: 'robot lan' is not a host name")


def test_pair_compares_serve_jsons_host_names_in_any_case_and_rooted(settings, run, served):
    # a serve.json edited by hand to "Robot.LAN" (or "robot.lan.") warned that the server refuses robot.lan,
    # which it answers: host names are in any case, and a rooted one is the same name
    from edge_rap.serve.pairing import Listening, record

    settings.memory.mkdir()
    for written in ("Robot.LAN", "robot.lan."):
        record(settings.memory, Listening("0.0.0.0", 8765, False, (written,)))
        assert run("pair", "--json", "--host", "robot.lan")[2] == "", written
        assert "answers no request for 'robot.example'" in run("pair", "--json", "--host", "robot.example")[2]


def test_pair_rotates_no_token_for_a_refused_host(settings, run):
    # `pair --rotate --host "a b"` was refused after the token was replaced: every paired phone unpaired, no new
    # token shown
    settings.memory.mkdir()
    token = json.loads(run("pair", "--json")[1])["token"]
    rc, out, err = run("pair", "--rotate", "--host", "a b")
    assert rc == 2 and "give a host name or address" in err
    assert (settings.memory / "api-token").read_text().strip() == token


def test_run_serve_on_a_port_in_use_is_refused_before_the_memory_is_given_a_token(settings, run, tmp_path):
    # Before: `run --serve` opened the memory and wrote its api-token, then found the port taken (as `serve` did)
    from edge_rap.serve.server import bind
    from edge_rap.serve.token import TOKEN_FILE

    settings.memory.mkdir()
    frame = save_photo(tmp_path / "frames", "astronaut")
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        rc, _, err = run("run", "--mute", "--source", frame, "--serve", f"127.0.0.1:{port}")
    finally:
        taken.close()
    assert rc == 2 and err.endswith(f"edge-rap: cannot listen on 127.0.0.1:{port} (Address already in use)\n"), err
    assert not (settings.memory / TOKEN_FILE).exists()


def test_serve_warns_when_it_listens_wider_without_tls():
    from edge_rap.serve.server import warn_if_open

    assert warn_if_open("127.0.0.1", None) is None and warn_if_open("::1", None) is None
    assert warn_if_open("localhost", None) is None
    assert "without TLS" in warn_if_open("0.0.0.0", None)
    from edge_rap.serve.server import Tls

    assert warn_if_open("0.0.0.0", Tls("c.pem", "k.pem")) is None


def test_serve_refuses_half_a_tls_pair_and_a_port_in_use(settings, run):
    """Each refusal is said whichever port is busy (one taken here, not 8765: anything may hold that one), and
    before the memory is given a token."""
    from edge_rap.serve.server import bind
    from edge_rap.serve.token import TOKEN_FILE

    settings.memory.mkdir()  # a new, empty memory (a --memory that does not exist is refused)
    taken = bind("127.0.0.1", 0)
    port = str(taken.getsockname()[1])
    try:
        rc, _, err = run("serve", "--port", port, "--tls-cert", "c.pem")
        assert rc == 2 and "--tls-key" in err
        key = settings.memory.parent / "k.pem"
        key.write_text("not read: the certificate is missing")
        rc, _, err = run("serve", "--port", port, "--tls-cert", "gone.pem", "--tls-key", key)  # ssl named neither
        assert rc == 2 and err.strip() == "edge-rap: --tls-cert gone.pem: cannot read it (No such file or directory)"
        rc, _, err = run("serve", "--port", port, "--tls-cert", key, "--tls-key", key)
        assert rc == 2 and "not a PEM certificate" in err
        rc, _, err = run("serve", "--port", port)
        assert rc == 2 and "cannot listen" in err
        assert not (settings.memory / TOKEN_FILE).exists()
    finally:
        taken.close()


@pytest.fixture
def serving(tmp_path):
    """Starts `edge-rap serve` in a process of its own on a free port; (the process, the port) once it says it
    serves. One still running at the test's end (a test that failed) is killed, not left behind."""
    from edge_rap.serve.server import bind

    started = []

    def start(env: dict | None = None, program: tuple[str, ...] = ("-m", "edge_rap"), run: str = "",
              **popen) -> tuple[subprocess.Popen, int]:
        """`run`: a FIFO to watch, served by `run --serve` instead (its "serving" line is on stderr)."""
        (tmp_path / "memory").mkdir()
        probe = bind("127.0.0.1", 0)
        port = probe.getsockname()[1]
        probe.close()
        command = ["run", "--mute", "--source", run, "--serve", f"127.0.0.1:{port}"] if run else \
            ["serve", "--port", str(port)]
        proc = subprocess.Popen([sys.executable, *program, *command, "--memory", str(tmp_path / "memory")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "EDGE_RAP_HOME": str(tmp_path / "home"),
                                     "EDGE_RAP_MODELS": str(tmp_path / "models"), **(env or {})}, **popen)
        started.append(proc)
        said = iter(proc.stderr.readline, "") if run else (proc.stdout.readline(),)
        assert any(line.startswith(("serving ", "edge-rap: serving the companion API")) for line in said)
        return proc, port

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_on_a_signal_with_exit_0(serving, sig):
    # uvicorn raised again the signal it had caught: `systemctl stop` killed `serve` by it (status 143) and Ctrl-C
    # ended as "interrupted" (130), neither closing the memory it served.
    # SIGINT as a terminal's Ctrl-C finds it: pytest run in the background (`&`) ignores it, serve then keeps it
    # ignored (as under nohup), and the test waited its 60 s
    proc, _ = serving(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, "", "")


#: `edge-rap serve` (or `run --serve`) whose GET /api/concepts never ends once it began (a file says when it has), its
#: stop's wait for the requests under way 0.5 s (5 s: the test would wait it out). Only the API's worker threads are
#: held: `run` reads the concepts too.
SERVE_HOLDING_A_REQUEST = """
import pathlib, sys, threading
from edge_rap import cli
from edge_rap.household import Household
from edge_rap.serve.server import ServerHandle

concepts = Household.concepts

def held(self):
    if not threading.current_thread().name.startswith("AnyIO worker"):
        return concepts(self)
    pathlib.Path(sys.argv[1]).touch()
    threading.Event().wait()

Household.concepts = held
ServerHandle.stop.__defaults__ = (0.5,)
raise SystemExit(cli.main(sys.argv[2:]))
"""


def _held_serving(serving, tmp_path, command: str, script: str, models, **popen):
    """`serve`, or `run --serve` watching a FIFO no one writes to, started by `script` (which holds a request once it
    began, and then makes the file `began`); (the process, its port, its token, `began`, the FIFO or "")."""
    from edge_rap.serve.token import TOKEN_FILE

    began = tmp_path / "began"
    fifo = ""
    if command == "run --serve":
        fifo = str(tmp_path / "door")
        os.mkfifo(fifo)
    proc, port = serving(program=("-c", script, str(began)), run=fifo, env={"EDGE_RAP_MODELS": str(models)}, **popen)
    return proc, port, (tmp_path / "memory" / TOKEN_FILE).read_text().strip(), began, fifo


@pytest.mark.parametrize("command", ["serve", "run --serve"])
def test_a_request_still_running_as_serve_ends_is_answered_503_not_dropped(serving, tmp_path, command, model_cache):
    # three uploads to a server stopped 0.3 s later: the log said "3 requests still running after 5 s: answered 503",
    # and curl got "100 Continue", then an empty reply: the process had ended under them, before they reached the
    # closed household that they would have been answered 503 on. `run --serve` watches a FIFO no one writes to.
    from edge_rap.serve.drain import SHUTTING_DOWN

    proc, port, token, began, fifo = _held_serving(serving, tmp_path, command, SERVE_HOLDING_A_REQUEST, model_cache)
    answers: list = []

    def ask() -> None:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/api/concepts", headers={"Authorization": f"Bearer {token}"},
                          timeout=60)
            answers.append((r.status_code, r.json(), r.headers.get("retry-after")))
        except httpx.HTTPError as e:
            answers.append(repr(e))

    asking = threading.Thread(target=ask)
    asking.start()
    for _ in range(6000):
        if began.exists() or not asking.is_alive():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    asking.join(60)
    assert answers == [(503, {"error": SHUTTING_DOWN}, "5")]
    assert proc.returncode == (2 if fifo else 0)  # (`run`: the FIFO never opened, a source error)
    waited = re.search(r"1 request still running after (\d+\.\d) s: answered 503", err)
    assert waited is not None and float(waited[1]) >= 0.5, err
    # (its server, held by the request, given up on after its own 0.5 + 1 s: not "did not stop within 20 s")
    said = re.search(r"the companion API had not stopped when its own stop ended, (\d+\.\d) s into the stop", err)
    assert (said is not None and float(said[1]) >= 1.5) == bool(fifo) and "20 s" not in err, err


#: `edge-rap serve` (or `run --serve`) whose rename, once committed, never ends (a file says when it has), its stop's
#: waits 10 minutes each: only a second signal ends them.
SERVE_HOLDING_A_CHANGE = """
import pathlib, sys, threading
from edge_rap import cli
from edge_rap.household import Household
from edge_rap.serve.server import ServerHandle

rename = Household.rename

def held(self, old, new):
    done = rename(self, old, new)
    pathlib.Path(sys.argv[1]).touch()
    threading.Event().wait()
    return done

Household.rename = held
ServerHandle.stop.__defaults__, ServerHandle.stop.__kwdefaults__ = (600.0,), {"changes": 600.0}
raise SystemExit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("command", ["serve", "run --serve"])
def test_the_stop_says_it_waits_for_a_change_and_a_second_ctrl_c_stops_at_once(serving, tmp_path, command,
                                                                               model_cache):
    # Ctrl-C said nothing for up to 15 s while a change finished, and a second Ctrl-C did nothing. Cut at once, the
    # change committed is kept whole (the memory commits whole or not at all), its client told it may have been made
    import queue

    from edge_rap.memory.store import Store
    from edge_rap.serve.drain import MAY_BE_DONE

    proc, port, token, began, fifo = _held_serving(serving, tmp_path, command, SERVE_HOLDING_A_CHANGE, model_cache,
                                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=60)
    assert client.post("/api/concepts", data={"name": "bo"},
                       files=photo_files(png(photo("coffee")))).status_code == 201
    answers: list = []
    renaming = threading.Thread(target=lambda: answers.append(client.patch("/api/concepts/bo", json={"name": "cy"})))
    renaming.start()
    for _ in range(6000):
        if began.exists():
            break
        time.sleep(0.01)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    proc.send_signal(signal.SIGINT)
    said = ""
    while "Ctrl-C again" not in said:
        said = lines.get(timeout=60)
    assert said == ("edge-rap: stopping: waiting up to 1200 s for 1 request under way (1 change of the memory); "
                    "Ctrl-C again to stop now\n")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == (2 if fifo else 0)  # (`run`: the FIFO never opened, a source error)
    renaming.join(60)
    client.close()
    assert [(r.status_code, r.json()) for r in answers] == [(503, {"error": MAY_BE_DONE})]
    reader = Store(tmp_path / "memory", readonly=True)
    try:
        assert [c.name for c in reader.concepts()] == ["cy"]  # committed before the cut: kept, whole
    finally:
        reader.close()


def test_serve_under_systemd_says_ready_pings_while_its_loop_turns_and_says_stopping(serving, tmp_path):
    from test_notify import Manager

    manager = Manager("path")
    try:
        proc, port = serving(env={"NOTIFY_SOCKET": manager.env, "WATCHDOG_USEC": "2000000"})
        ready = manager.wait_for(lambda m: len(m) >= 1)[0]
        assert ready == ["READY=1", "WATCHDOG=1", f"STATUS=serving {tmp_path / 'memory'} on http://127.0.0.1:{port}/"]
        # Pinged every second for over twice the interval: the server's event loop went on checking in.
        manager.wait_for(lambda m: m[1:5] == [["WATCHDOG=1"]] * 4)
        proc.send_signal(signal.SIGTERM)
        assert proc.communicate(timeout=60) == ("", "") and proc.returncode == 0
        assert manager.wait_for(lambda m: "STOPPING=1" in m[-1])[-1] == ["STOPPING=1", "STATUS=stopping"]
    finally:
        manager.close()


def test_sigusr1_writes_every_threads_stack_and_serving_goes_on(serving):
    # A daemon that seemed stuck (a request over 30 s in the soak) could only be killed: SIGUSR1, by default,
    # ended it, and no stack said where it waited.
    proc, port = serving()
    proc.send_signal(signal.SIGUSR1)
    assert proc.stderr.readline().startswith(("Thread 0x", "Current thread 0x"))
    assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).status_code == 200
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_daemon_stats_reads_the_running_daemons_counters(monkeypatch):
    from collections import deque
    from types import SimpleNamespace

    from edge_rap.daemon.loop import Summary
    from edge_rap.serve import stats
    from edge_rap.serve.stats import daemon_stats

    daemon = SimpleNamespace(summary=Summary(frames_read=20, frames_processed=12, frames_dropped=3),
                             times={"embed": deque([10.0, 30.0, 20.0]), "gate": deque(), "lag": deque([5.0])})
    # The stats' clock held 10 s after the start: the rate is exact, whatever this machine's pauses.
    monkeypatch.setattr(stats, "time", SimpleNamespace(monotonic=lambda: 1010.0))
    figures = daemon_stats(daemon, started=1000.0)()
    assert figures["stages_ms"] == {"embed": 20.0}
    assert (figures["frames_read"], figures["frames_processed"], figures["frames_dropped"]) == (20, 12, 3)
    assert figures["fps"] == 2.0 and figures["uptime_s"] == 10.0


def test_pair_warns_by_the_names_the_running_server_answers_not_by_its_own_shells(serving, tmp_path, capsys,
                                                                                    monkeypatch):
    # `serve` ran as a service with EDGE_RAP_SERVE_HOSTS=robot.lan; `pair --host robot.lan` in a shell without it
    # warned that the server would refuse robot.lan, and `pair --host robot.example` in a shell with it did not
    from edge_rap import cli

    proc, _ = serving({"EDGE_RAP_SERVE_HOSTS": "robot.lan"})

    def warned(host: str) -> bool:
        capsys.readouterr()
        assert cli.main(["pair", "--json", "--host", host, "--memory", str(tmp_path / "memory")]) == 0
        return "answers no request" in capsys.readouterr().err

    assert not warned("robot.lan")
    monkeypatch.setenv("EDGE_RAP_SERVE_HOSTS", "robot.example")
    assert warned("robot.example") and not warned("robot.lan")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    record = tmp_path / "memory" / "serve.json"  # one a serve of before wrote: this shell's names are the guess
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "serve_hosts"}))
    assert not warned("robot.example") and warned("robot.lan")


@pytest.mark.parametrize("command", ["serve", "run"])
def test_an_embedder_it_cannot_use_is_refused_before_the_port_is_bound(command, settings, run, tmp_path):
    # Before: `serve` said "serving ..." and answered every upload and recognition with the model's error; `run
    # --serve` bound the port first. Checked on a port in use: the embedder is said, not the port.
    from edge_rap.serve.server import bind
    from edge_rap.serve.token import TOKEN_FILE

    settings.memory.mkdir()
    detector = tmp_path / "a-detector"
    detector.mkdir()
    (detector / "manifest.json").write_text(json.dumps({"name": "a-detector", "role": "detector", "files": {}}))
    frame = save_photo(tmp_path / "frames", "astronaut")
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    argv = ["serve", "--port", port] if command == "serve" else ["run", "--mute", "--source", frame, "--serve", port]
    try:
        for embedder, said in ((tmp_path / "gone", "no such model folder"), (detector, "is a detector")):
            rc, _, err = run(*argv, "--embedder", embedder)
            assert rc == 2 and err.startswith("edge-rap: ") and err.count("\n") == 1 and said in err, err
    finally:
        taken.close()
    assert not (settings.memory / TOKEN_FILE).exists()


def test_serve_stopped_while_it_starts_ends_before_it_serves(settings, run, stop_signal, monkeypatch):
    # Before: a SIGTERM while serve loaded its household (its handlers now come as the command starts) bound the port,
    # recorded it and said "serving ... (Ctrl-C stops)" as its last line, then ended
    from edge_rap import app
    from edge_rap.serve.server import bind

    check_embedder = app.check_embedder

    def stopped_meanwhile(*args, **kwargs):
        stop_signal(signal.SIGTERM)
        return check_embedder(*args, **kwargs)

    settings.memory.mkdir()
    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    monkeypatch.setattr(app, "check_embedder", stopped_meanwhile)
    assert run("serve", "--port", port) == (0, "", "")
    assert not (settings.memory / "serve.json").exists()
