"""Temporary files a killed process left: removed by the next process, never a live one's (edge_rap/scratch.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from edge_rap import scratch

#: A process holding an uploaded photo in its temporary folder until its stdin closes, as `serve` does while the
#: memory reads it: it prints the photo's path.
HOLD_UPLOAD = """
import sys
from edge_rap.serve.uploads import Photo, as_files
with as_files([Photo(b"jpeg", "photo", ".jpg", "image/jpeg")]) as (paths, _):
    print(paths[0], flush=True)
    sys.stdin.read()
"""


def _holding(tmp: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLD_UPLOAD], env={**os.environ, "TMPDIR": str(tmp)},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, Path(process.stdout.readline().strip())


def _aged(folder: Path) -> Path:
    """The folder as if made minutes ago: younger ones are left alone (their process may not have locked them)."""
    old = time.time() - 10 * scratch.GRACE_S
    os.utime(folder, (old, old))
    return folder


def test_the_folder_of_a_killed_process_is_removed_and_a_live_ones_kept(tmp_path):
    killed, killed_photo = _holding(tmp_path)
    live, live_photo = _holding(tmp_path)
    try:
        killed.kill()  # SIGKILL: no cleanup runs
        killed.wait()
        assert killed_photo.is_file()
        dead = _aged(killed_photo.parent.parent)
        kept = _aged(live_photo.parent.parent)
        assert dead.name.startswith(f"edge-rap-pid{killed.pid}-")
        assert kept.name.startswith(f"edge-rap-pid{live.pid}-")
        assert scratch.remove_leftovers(tmp_path) == [dead]
        assert not dead.exists() and live_photo.is_file()
    finally:
        live.communicate("")
    assert live.returncode == 0 and not kept.exists()  # and one that ends removes its own


def test_a_folder_named_after_a_live_pid_that_no_process_holds_is_removed(tmp_path):
    """A pid reused (a container's daemon is pid 1 at every restart) does not keep a dead process's folder."""
    reused = tmp_path / f"edge-rap-pid{os.getpid()}-abcd1234"
    (reused / "piper-x").mkdir(parents=True)
    _aged(reused)
    young = tmp_path / "edge-rap-pid1-young123"
    young.mkdir()
    others = [tmp_path / name for name in ("edge-rap-upload-abc", "edge-rap-2024-backup1", "someone-else")]
    for folder in others:  # not ours to judge
        folder.mkdir()
        _aged(folder)
    assert scratch.remove_leftovers(tmp_path) == [reused]
    assert young.exists() and all(folder.exists() for folder in others)


def test_a_private_folder_is_in_this_processs_folder_which_is_made_again_if_removed(temp_folder):
    import shutil

    first = scratch.private_folder("piper")
    assert first.parent.parent == temp_folder and first.parent.name.startswith(f"edge-rap-pid{os.getpid()}-")
    _aged(first.parent)
    assert scratch.remove_leftovers() == []  # this process's own, though older than a minute
    shutil.rmtree(first.parent)  # (systemd-tmpfiles skips it; a person may not)
    again = scratch.private_folder("piper")
    assert again.parent.is_dir() and again.parent != first.parent


def test_a_young_file_whose_maker_runs_no_more_is_a_dead_ones_and_a_live_makers_is_not(tmp_path):
    # a restore killed outright left its folder to the restore started at once after it (a minute's grace); and a
    # name's pid larger than any (house.tar.partial-99999999999999999999) is no process's, not a traceback
    young = tmp_path / "young"
    young.write_bytes(b"half")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not scratch.is_unheld(young) and not scratch.is_unheld(young, maker=os.getpid())
    assert scratch.is_unheld(young, maker=int(ended.stdout)) and scratch.is_unheld(young, maker=10 ** 20)


def test_a_young_file_whose_maker_was_killed_and_is_not_reaped_yet_is_a_dead_ones(tmp_path):
    # a zombie still answers kill(pid, 0): the folder of a restore killed by a launcher that had not waited for it yet
    # was left to the next restore, as a live one's
    young = tmp_path / "young"
    young.write_bytes(b"half")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # (ended, not reaped: a zombie)
        assert scratch.is_unheld(young, maker=child.pid)
    finally:
        child.wait()
