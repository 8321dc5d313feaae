"""Running a command with a folder read-only: chmod for an ordinary user; for root (whom permissions do not
stop), a read-only bind mount in a private user and mount namespace, or a mode with the capabilities that pass it
dropped. Skips the test where neither works."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest


def run_read_only(folder: Path, cmd: list[str], done: Path) -> None:
    """Run `cmd` while `folder` cannot be written; `done`: a file the command writes, to tell a command that ran
    from a mount that could not be made."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        try:
            for p in modes:
                p.chmod(modes[p] & ~0o222)
            subprocess.run(cmd, env=dict(os.environ), check=True, timeout=120)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root and no `unshare` to make a read-only mount")
    f, mounted = shlex.quote(str(folder)), done.with_name(done.name + ".mounted")
    shell = (f"mount --bind {f} {f} && mount -o remount,bind,ro {f} && : > {shlex.quote(str(mounted))} && "
             f"exec {shlex.join(cmd)}")
    ran = subprocess.run([unshare, "-rm", "sh", "-c", shell], env=dict(os.environ), timeout=120, capture_output=True,
                         text=True)
    if not mounted.exists():
        pytest.skip(f"running as root and cannot make a read-only mount: {ran.stderr.strip()[:200]}")
    assert done.exists(), f"the command under the read-only mount failed: {ran.stderr.strip()[-400:]}"


def run_unwritable(folder: Path, cmd: list[str]) -> subprocess.CompletedProcess:
    """Run `cmd` while `folder` alone is `chmod a-w` (its parent, and the drive, still writable: not a mount point,
    which a restore refuses as one)."""
    return run_with_mode(folder, folder.stat().st_mode & ~0o222, cmd)


def run_with_mode(path: Path, mode: int, cmd: list[str]) -> subprocess.CompletedProcess:
    """Run `cmd` while `path` has `mode`, as the modes bind it: for root, with the capabilities that read and write
    past a mode dropped (setpriv). Skips the test where they cannot be."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search,-fowner"
        prefix = [shutil.which("setpriv") or "setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
        try:
            subprocess.run([*prefix, "true"], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.CalledProcessError) as e:
            pytest.skip(f"running as root and cannot drop the capability to read and write past a mode: {e}")
    was = path.stat().st_mode
    path.chmod(mode)
    try:
        return subprocess.run([*prefix, *cmd], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    finally:
        path.chmod(was)
