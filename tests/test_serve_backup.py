"""`GET /api/backup`: a fresh backup for the phone to keep, behind the token, one `restore` accepts, without the
token inside, and nothing left in the temporary folder, however the download ends."""

from __future__ import annotations

import re
import tarfile

from scenes import scene
from serve_support import fake_settings, live_server, photo_files, png

from edge_rap.memory.restore import restore
from edge_rap.serve.backup import fresh_backup
from edge_rap.serve.token import TOKEN_FILE


def files_in(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_backup_download_needs_the_token_restores_and_leaves_nothing_behind(tmp_path, temp_folder):
    with live_server(fake_settings(tmp_path)) as live:
        with live.client(token=None) as c:
            assert c.get("/api/backup").status_code == 401
        with live.client() as c:
            assert c.get("/api/backup").status_code == 404  # no memory yet: said, not an empty archive
            assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).status_code == 201
            r = c.get("/api/backup")
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-tar"
        name = re.fullmatch(r'attachment; filename="(edge-rap-backup-\d{8}T\d{6}Z\.tar)"',
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
        download = fresh_backup(live.home)
        assert files_in(temp_folder) == []
        (tmp_path / download.name).write_bytes(b"".join(download.chunks()))
        assert download.file.closed
    assert restore(tmp_path / download.name, tmp_path / "restored").counts.concepts == 1
