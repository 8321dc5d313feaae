"""Output folders (`--speak-to`, `--snapshots`): made, proven writable up front, one line when not."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from readonly import run_read_only

from edge_rap.errors import EdgeRapError
from edge_rap.folders import missing_folders, remove_empty, writable_folder
from edge_rap.memory.rapdb import export_rap
from edge_rap.memory.store import Store

CHECK = r"""
import json, sys
from pathlib import Path
from edge_rap.daemon.events import SnapshotPolicy, Snapshots
from edge_rap.errors import EdgeRapError
from edge_rap.speech.tts import Speaker
folder, out = Path(sys.argv[1]), sys.argv[2]
said = {}
for option, open_it in (("--speak-to", lambda: Speaker(None, folder)),  # the voice is not needed to open it
                        ("--snapshots", lambda: Snapshots(SnapshotPolicy(folder, 86400, 10)))):
    try:
        open_it()
        said[option] = "opened"
    except EdgeRapError as e:
        said[option] = str(e)
Path(out).write_text(json.dumps(said))
"""


def test_a_missing_folder_is_made_and_a_file_is_refused(tmp_path):
    assert writable_folder(tmp_path / "a" / "b", "--speak-to").is_dir()
    (tmp_path / "notes").write_text("x")
    with pytest.raises(EdgeRapError, match=r"--snapshots .*notes: is a file, not a folder"):
        writable_folder(tmp_path / "notes", "--snapshots")
    with pytest.raises(EdgeRapError) as said:  # before: "cannot write there (Not a directory)"
        writable_folder(tmp_path / "notes" / "snaps", "--snapshots")
    assert str(said.value) == (f"--snapshots {tmp_path / 'notes' / 'snaps'}: {tmp_path / 'notes'} is a file, not a "
                               "folder")


def test_a_pipe_named_as_a_folder_is_said_to_be_a_pipe(tmp_path):
    os.mkfifo(tmp_path / "pipe")  # (said to be "a file")
    with pytest.raises(EdgeRapError, match=r"--snapshots .*pipe: is a pipe, not a folder"):
        writable_folder(tmp_path / "pipe", "--snapshots")
    with pytest.raises(EdgeRapError, match=r"--snapshots .*snaps: .*pipe is a pipe, not a folder"):
        writable_folder(tmp_path / "pipe" / "snaps", "--snapshots")


def test_a_folder_made_for_snapshots_or_speech_is_its_owners_alone_whatever_the_umask(tmp_path):
    # snapshots show the household, spoken lines say their names: under the usual umask they were 0755
    old = os.umask(0o022)
    try:
        made = writable_folder(tmp_path / "new" / "snaps", "--snapshots")
        (tmp_path / "shared").mkdir(mode=0o755)
        kept = writable_folder(tmp_path / "shared", "--speak-to")
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700 and stat.S_IMODE(kept.stat().st_mode) == 0o755


def test_a_folder_that_exists_but_cannot_be_written_is_refused_before_the_run(tmp_path):
    # Found out at the first spoken line or arrival, it was a warning minutes into a run that exited 0.
    folder = tmp_path / "out"
    folder.mkdir()
    script, out = tmp_path / "check.py", tmp_path / "said.json"
    script.write_text(CHECK)
    run_read_only(folder, [sys.executable, str(script), str(folder), str(out)], out)
    said = json.loads(out.read_text())
    for option in ("--speak-to", "--snapshots"):
        assert said[option].startswith(f"{option} {folder}: cannot write there (Read-only file system") or \
            said[option].startswith(f"{option} {folder}: cannot write there (Permission denied"), said
    assert list(folder.iterdir()) == []


def test_a_refused_folder_is_one_line_also_where_nothing_can_speak(run, settings, tmp_path, monkeypatch, caplog):
    # With no audio player, "not speaking: ..." was said first: two lines on stderr for one mistake.
    from scenes import save, scene

    from edge_rap.speech import tts

    monkeypatch.setattr(tts, "PLAYERS", [("edge-rap-no-such-player",)])
    settings.memory.mkdir()  # an empty folder: a new memory to run
    (tmp_path / "notes").write_text("x")
    photo = save(tmp_path / "frame.png", scene(1))
    rc, _, err = run("run", "--source", photo, "--snapshots", tmp_path / "notes")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("edge-rap: --snapshots "), err
    assert not [m for m in caplog.messages if "not speaking" in m]


def unsearchable(locked: Path, monkeypatch) -> Path:
    """`locked` played as a folder this account may not search (root searches every folder): a stat of anything in
    it raises PermissionError, as the OS's would."""
    real = Path.stat

    def stat(self, *, follow_symlinks=True):
        if locked in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "stat", stat)
    return locked


def test_a_path_behind_a_folder_this_account_may_not_search_is_one_line(tmp_path, monkeypatch):
    # Path.exists and Path.is_symlink raise PermissionError there, and the checks for a file in the way (a
    # writable folder, a backup's folder), a link to nothing (the backup, --memory) or the backup to restore printed
    # a traceback. Root searches every folder: the OS's answer is played by the stat it asks.
    from edge_rap.memory.backup import back_up
    from edge_rap.memory.files import not_a_folder
    from edge_rap.memory.restore import restore

    locked = unsearchable(tmp_path / "locked", monkeypatch)
    for check in (lambda: writable_folder(locked / "out", "--snapshots"), lambda: not_a_folder(locked / "memory"),
                  lambda: back_up(tmp_path / "memory", locked / "sub" / "x.tar"),
                  lambda: restore(locked / "x.tar", tmp_path / "memory")):
        with pytest.raises(EdgeRapError, match=r"cannot reach it \(Permission denied: a folder on its path"):
            check()


def test_a_camera_file_or_the_doctors_memory_behind_such_a_folder_is_one_line(tmp_path, monkeypatch, settings):
    # `run --source locked/door.mp4` (Path.exists) and `doctor --memory locked/memory` (the event log's Path.is_dir)
    # printed a traceback: said in one line, the doctor's other checks still made
    import dataclasses

    from edge_rap.daemon.doctor import _event_log
    from edge_rap.perceive.camera import parse_source

    locked = unsearchable(tmp_path / "locked", monkeypatch)
    with pytest.raises(EdgeRapError, match=r"door.mp4: cannot reach it \(Permission denied: a folder on its path"):
        parse_source(str(locked / "door.mp4"))
    said = _event_log(dataclasses.replace(settings, memory=locked / "memory"))
    assert said["path"] is None and "memory: cannot reach it (Permission denied" in said["problem"], said


def test_a_settings_file_profile_dataset_or_export_behind_such_a_folder_is_one_line(run, tmp_path, monkeypatch):
    # `run --config`, `doctor --config`, `--device locked/x.toml`, `import-rap locked/database.json`, `eval --dataset`
    # and `export-rap locked/out` asked Path.exists, is_dir or is_symlink there first: a PermissionError traceback
    locked = unsearchable(tmp_path / "locked", monkeypatch)
    for argv, path in ((("run", "--config", locked / "run.toml"), locked / "run.toml"),
                       (("doctor", "--config", locked / "run.toml"), locked / "run.toml"),
                       (("concepts", "--device", locked / "x.toml"), locked / "x.toml"),
                       (("import-rap", locked / "database.json"), locked / "database.json"),
                       (("eval", "retrieval", "--dataset", locked / "ds"), locked / "ds")):
        rc, out, err = run(*argv)
        assert rc == 2 and err == f"edge-rap: {path}: cannot reach it (Permission denied: a folder on its path this " \
                                  "account may not search)\n", (argv, err)
    with pytest.raises(EdgeRapError, match=r"out: cannot reach it \(Permission denied: a folder on its path"):
        export_rap(Store(tmp_path / "memory"), locked / "out")


def test_the_folders_a_path_through_a_new_folders_parent_makes_are_all_removed_when_left_empty(tmp_path):
    # `recognize --draw new/../d` that failed left the empty "new": "new/.." (missing too) could not be removed
    folder = tmp_path / "new" / ".." / "d"
    made = missing_folders(folder)
    folder.mkdir(parents=True)
    remove_empty(made)
    assert sorted(tmp_path.iterdir()) == []
