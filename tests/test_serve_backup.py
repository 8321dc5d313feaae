"""`GET /api/backup`: a fresh backup for the phone to keep, behind the token, one `restore` accepts, without the
token inside, and nothing left in the temporary folder, however the download ends."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scenes import scene
from serve_support import fake_settings, live_server, photo_files, png

from edge_rap.memory.restore import restore
from edge_rap.serve.backup import fresh_backup
from edge_rap.serve.log_budget import LogBudget
from edge_rap.serve.token import TOKEN_FILE


def files_in(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def held_open(folder) -> list[str]:
    """The unlinked files under `folder` this process still holds open (a download's bytes)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return [link for link in links if link.startswith(str(folder)) and link.endswith(" (deleted)")]


def remember_noise(live) -> None:
    """A memory of about 13 MB that does not compress: more than the sockets' buffers hold."""
    noise = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
    with live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"},
                      files=photo_files(png(noise), png(noise[::-1]))).status_code == 201


@contextmanager
def stalled_download(live):
    """A download whose client reads its first bytes and no more (a phone's browser gone to sleep)."""
    host, port = live.url.split("//")[1].rsplit(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.sendall(f"GET /api/backup HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {live.token}\r\n\r\n"
                  .encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        yield s


def eventually(condition, most_s: float = 10.0) -> bool:
    deadline = time.monotonic() + most_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_backup_download_needs_the_token_restores_and_leaves_nothing_behind(tmp_path, temp_folder):
    with live_server(fake_settings(tmp_path)) as live:
        with live.client(token=None) as c:
            assert c.get("/api/backup").status_code == 401
        with live.client() as c:
            assert c.get("/api/backup").status_code == 404  # no memory yet: said, not an empty archive
            assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).status_code == 201
            r = c.get("/api/backup")
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-tar"
        name = re.fullmatch(r'attachment; filename="(edge-rap-backup-\d{8}T\d{6}Z-download\.tar)"',
                            r.headers["content-disposition"]).group(1)
        assert int(r.headers["content-length"]) == len(r.content)
        assert files_in(temp_folder) == []  # written there, and gone once sent
        assert (live.home.root / TOKEN_FILE).exists()
    saved = tmp_path / name
    saved.write_bytes(r.content)
    with tarfile.open(saved) as tar:
        assert TOKEN_FILE not in tar.getnames() and "serve.json" not in tar.getnames()
    assert restore(saved, tmp_path / "restored").counts.concepts == 1


def test_a_download_is_off_the_disk_before_its_first_byte_is_sent(tmp_path, temp_folder):
    """So that a client that leaves half-way, or never reads, leaves nothing behind either."""
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1))))
        download = fresh_backup(live.home, LogBudget())
        assert files_in(temp_folder) == []
        (tmp_path / download.name).write_bytes(b"".join(download.reader().chunks()))
        assert download.file.closed
    assert restore(tmp_path / download.name, tmp_path / "restored").counts.concepts == 1


def test_a_client_that_leaves_half_way_frees_the_backup_at_once(tmp_path, temp_folder):
    with live_server(fake_settings(tmp_path)) as live:
        remember_noise(live)
        with stalled_download(live):
            assert len(held_open(temp_folder)) == 1
        assert eventually(lambda: held_open(temp_folder) == [])  # closed as the client left, not at a GC some day
        with live.client() as c:
            assert c.get("/api/backup").status_code == 200


def test_a_second_download_while_one_is_sent_is_refused_with_retry_after(tmp_path, temp_folder):
    """One backup in the temporary folder at a time, however many taps on the button."""
    with live_server(fake_settings(tmp_path)) as live:
        remember_noise(live)
        with stalled_download(live), live.client() as c:
            r = c.get("/api/backup")
            assert r.status_code == 503 and r.headers["retry-after"] and "already" in r.json()["error"], r.status_code
            assert c.head("/api/backup").status_code == 503  # as the GET is answered
            assert len(held_open(temp_folder)) == 1
        with live.client() as c:
            assert eventually(lambda: c.get("/api/backup").status_code == 200)



def test_a_download_is_over_as_its_last_byte_is_handed_on(tmp_path, temp_folder):
    """A client that has every byte may ask for another at once (the fuzz test's did): the first must not still
    count as being sent then."""
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1))))
        download, sent = fresh_backup(live.home, LogBudget()), 0
        chunks = download.reader().chunks()
        while sent < download.size:
            sent += len(next(chunks))
        assert download.file.closed


def test_a_temporary_folder_without_room_for_the_backup_is_507_before_anything_is_written(tmp_path, temp_folder,
                                                                                        monkeypatch):
    """Not filled to the last byte first: with the service's private /tmp on the memory's own drive, the memory's
    own writes meanwhile would find it full."""
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1))))
            real = shutil.disk_usage
            monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=1 << 20))
            r = c.get("/api/backup")
            assert r.status_code == 507 and "MB needed" in r.json()["error"] and "TMPDIR" in r.json()["error"], \
                r.status_code
            assert files_in(temp_folder) == []
            monkeypatch.setattr(shutil, "disk_usage", real)
            assert c.get("/api/backup").status_code == 200


def test_a_temporary_folder_the_backup_cannot_be_made_in_is_503_in_words_not_a_500(tmp_path, temp_folder,
                                                                                    monkeypatch):
    """The backup's own folder is made in the temporary folder: one read-only, or removed under the server, was a
    500 (mkdtemp's OSError uncaught), as an upload's was."""
    from edge_rap.serve import backup

    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1))))
        with monkeypatch.context() as gone:
            gone.setattr(backup, "private_folder", lambda kind: Path(tempfile.mkdtemp(dir=tmp_path / "gone")))
            for r in (c.get("/api/backup"), c.post("/api/backup/link")):
                assert r.status_code == 503, r.text
                assert r.json()["error"] == ("the device's temporary folder, where a download's backup is made, "
                                             "cannot be written (No such file or directory); nothing was changed")
                assert str(tmp_path) not in r.text
        assert c.get("/api/backup").status_code == 200


def test_a_link_downloads_the_backup_without_the_token_until_it_expires(tmp_path, temp_folder, monkeypatch):
    # the page fetched the backup with the token and held it whole in the phone browser's memory to save it; a link
    # the browser opens itself streams it to disk, and needs no token, which a plain link cannot send
    from edge_rap.serve import backup

    monkeypatch.setattr(backup, "LINK_S", 1.0)
    with live_server(fake_settings(tmp_path)) as live:
        with live.client(token=None) as anonymous:
            assert anonymous.post("/api/backup/link").status_code == 401
        with live.client() as c:
            assert c.post("/api/backup/link").status_code == 404  # no memory yet
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).raise_for_status()
            made = c.post("/api/backup/link")
        assert made.status_code == 201
        link = made.json()
        assert re.fullmatch(r"/api/downloads/[\w-]{40,}", link["url"]) and link["expires_s"] == 1.0
        assert live.token not in link["url"]
        with live.client(token=None) as anonymous:
            r = anonymous.get(link["url"])
            assert r.status_code == 200 and len(r.content) == link["size"]
            assert r.headers["content-disposition"] == f'attachment; filename="{link["name"]}"'
            # a browser that hands the download to a manager of its own asks again: the same bytes
            assert anonymous.get(link["url"]).content == r.content
            assert eventually(lambda: anonymous.get(link["url"]).status_code == 404)  # expired
            assert "make another" in anonymous.get(link["url"]).json()["error"]
        assert eventually(lambda: held_open(temp_folder) == [])
    saved = tmp_path / link["name"]
    saved.write_bytes(r.content)
    assert restore(saved, tmp_path / "restored").counts.concepts == 1


def test_a_link_not_opened_in_time_frees_its_backup(tmp_path, temp_folder, monkeypatch):
    from edge_rap.serve import backup

    monkeypatch.setattr(backup, "LINK_S", 0.3)
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).raise_for_status()
            url = c.post("/api/backup/link").json()["url"]
            assert len(held_open(temp_folder)) == 1
            assert eventually(lambda: held_open(temp_folder) == [])  # its bytes freed unopened
            assert c.get(url).status_code == 404
            assert c.get("/api/backup").status_code == 200  # and the next download is not held off


def test_a_link_that_expires_while_it_is_read_is_read_to_its_end(tmp_path, temp_folder):
    with live_server(fake_settings(tmp_path)) as live:
        remember_noise(live)  # (more than one chunk)
        download = fresh_backup(live.home, LogBudget(), reusable=True)
        reading = download.reader().chunks()
        first = next(reading)
        download.expire()
        assert download.reader() is None and not download.file.closed  # no new reader; this one goes on
        whole = first + b"".join(reading)
        assert len(whole) == download.size and download.file.closed


def test_a_new_link_replaces_one_never_opened(tmp_path, temp_folder):
    """A download the browser blocked must not refuse the next tap for a minute."""
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).raise_for_status()
            first = c.post("/api/backup/link").json()["url"]
            second = c.post("/api/backup/link")
            assert second.status_code == 201 and len(held_open(temp_folder)) == 1
            assert c.get(first).status_code == 404 and c.get(second.json()["url"]).status_code == 200


def test_a_new_link_while_one_is_being_read_is_refused(tmp_path, temp_folder):
    with live_server(fake_settings(tmp_path)) as live:
        remember_noise(live)
        with live.client() as c:
            url = c.post("/api/backup/link").json()["url"]
        host, port = live.url.split("//")[1].rsplit(":", 1)
        with socket.socket() as s:  # a phone reading it slowly
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect((host, int(port)))
            s.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            with live.client() as c:
                r = c.post("/api/backup/link")
                assert r.status_code == 503 and r.headers["retry-after"], r.status_code
                assert c.get("/api/backup").status_code == 503
                again = c.get(url)  # the refusals ended nothing: a browser asking again still gets it
                assert again.status_code == 200 and len(again.content) > 13_000_000


def test_a_link_saved_already_does_not_hold_the_next_download_off(tmp_path, temp_folder):
    # its file stayed open for the rest of its minute, and GET /api/backup was refused meanwhile
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).raise_for_status()
            url = c.post("/api/backup/link").json()["url"]
            assert c.get(url).status_code == 200
            assert c.get("/api/backup").status_code == 200
            assert c.get(url).status_code == 404  # ended by the other download


def test_head_of_a_backup_says_what_a_get_would_without_making_one(tmp_path, temp_folder, monkeypatch):
    """RFC 9110 9.3.2: HEAD wherever GET (it was 405). A backup is not made for an answer without a body (seconds of
    work, the memory's size in the temporary folder): its status is checked as a GET checks it, its length unsaid; a
    link's HEAD does not read its file, nor use it up."""
    from edge_rap.serve import backup

    made = []
    real = backup.back_up
    monkeypatch.setattr(backup, "back_up", lambda *a, **k: made.append(a) or real(*a, **k))
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        assert c.head("/api/backup").status_code == 404  # no memory yet
        c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1))))
        r = c.head("/api/backup")
        assert (r.status_code, r.headers["content-type"], r.content, made) == (200, "application/x-tar", b"", [])
        assert re.fullmatch(r'attachment; filename="edge-rap-backup-\d{8}T\d{6}Z-download\.tar"',
                            r.headers["content-disposition"]) and "content-length" not in r.headers
        assert "transfer-encoding" not in r.headers  # (h11's "chunked": the GET sends a length)
        assert r.headers["x-content-type-options"] == "nosniff" and files_in(temp_folder) == []
        real_usage = shutil.disk_usage
        with monkeypatch.context() as full:
            full.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=1 << 20))
            assert c.head("/api/backup").status_code == 507
        link = c.post("/api/backup/link").json()
        assert len(made) == 1
        r = c.head(link["url"])
        assert (r.status_code, r.headers["content-length"], r.content) == (200, str(link["size"]), b"")
        assert len(c.get(link["url"]).content) == link["size"]  # the HEAD read none of it, nor used it up
        assert c.head("/api/backup").status_code == 200  # the link unread now: a GET expires it, as it does
        assert c.get("/api/backup").status_code == 200 and len(made) == 2
