"""The device's API token: made at first start in the memory folder (mode 0600), checked in constant time,
re-read when `edge-rap pair --rotate` replaces it, so a rotation invalidates the old token in a running server."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import threading
from pathlib import Path

from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.memory.files import file_identity, memory_away, private_folder

TOKEN_FILE = "api-token"


def _new() -> str:
    """256 random bits in hex: never starts with "-", so it is safe after --token on any command line."""
    return secrets.token_hex(32)


def _write(path: Path, token: str) -> None:
    """Write the token into a new file readable by its owner only (FileExistsError where one is there already:
    never through a symlink, never over another file). One not written whole is removed: an empty `api-token` a full
    disk left was "damaged" at the next start, once room was made, and `pair --rotate` left `.api-token.new`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)  # (made here, O_EXCL: no one else's)
        raise
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    with os.fdopen(_open_file(path), "rb") as f:
        try:
            if stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077:
                os.fchmod(f.fileno(), 0o600)  # readable by others: tightened before it is used
            data = f.read()
        except OSError as e:  # its drive failing (EIO), or another account's file readable by all: never a 500
            raise _unreadable(path, e) from None
    try:
        token = data.decode().strip()
    except UnicodeDecodeError:  # bytes no token has (ours are hex): damaged, not a 500 and a traceback a request
        token = ""
    if len(token) < 32:
        raise DeviceError(path, "the API token is damaged; run `edge-rap pair --rotate` on the device")
    return token


def _open_file(path: Path) -> int:
    """The token file's descriptor, if what is at its path is a regular file. Opened without waiting (a FIFO there
    held `serve`'s event loop, /api/health too, until a writer came; O_NOCTTY: a terminal's node takes no control),
    then judged by what was opened, not by a look before it that a swap could outrun."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise _unreadable(path, e) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            return fd
        error = _misplaced(path, mode)  # (a folder opens too: os.fdopen refused it, the descriptor left open)
    except OSError as e:
        error = _unreadable(path, e)
    os.close(fd)
    raise error


def _unreadable(path: Path, e: OSError) -> DeviceError:
    """The token file there but not opened or looked at: the device's trouble (503), never a 500 and a traceback a
    request. Something other than a file in its place is named as that, though it refused the open (a folder of mode
    000 said "cannot read the API token (Permission denied)", a socket "(No such device or address)", a link, which
    O_NOFOLLOW refuses, "(Too many levels of symbolic links)")."""
    try:
        mode: int | None = os.lstat(path).st_mode
    except OSError:  # not looked at either (its folder unsearchable, its drive failing)
        mode = None
    if mode is None or stat.S_ISREG(mode):
        return DeviceError(path, f"cannot read the API token ({e.strerror})")
    return _misplaced(path, mode)


#: What mends anything but an empty folder in the token's place: perhaps another program's, for its owner to move.
_MOVE_AWAY = "move it away, then run `edge-rap pair --rotate` on the device"


def _misplaced(path: Path, mode: int) -> DeviceError:
    """Something other than a file in the token's place, named with what mends it, as `serve` and `pair` start, in
    a running server's 503 (its `problem`: a folder's was "cannot read the API token (Is a directory)", then
    "damaged: run `edge-rap pair --rotate`", which cannot remove a folder holding files) and as `pair --rotate`
    leaves it as it is."""
    if stat.S_ISLNK(mode):  # never read through, dangling or not (one to nowhere was taken for the token gone: 401)
        return DeviceError(path, f"a link is in the API token's place; {_MOVE_AWAY}")
    if not stat.S_ISDIR(mode):  # a FIFO, socket or device node
        return DeviceError(path, f"something that is not a file is in the API token's place; {_MOVE_AWAY}")
    if _holds_entries(path):
        return DeviceError(path, f"a folder is in the API token's place, holding files; {_MOVE_AWAY}")
    return DeviceError(path, "an empty folder is in the API token's place; `edge-rap pair --rotate` on the device "
                             "removes it and writes a token")


def _holds_entries(folder: Path) -> bool:
    """Whether the folder holds anything (one that cannot be listed is taken to: `pair --rotate` removes none)."""
    try:
        return any(folder.iterdir())
    except OSError:
        return True


def ensure_token(memory: Path) -> str:
    """The device's token, made now if this is the first start."""
    path = memory / TOKEN_FILE
    try:
        private_folder(memory)
        _write(path, _new())
    except FileExistsError:
        pass
    except OSError as e:
        raise EdgeRapError(f"{path}: cannot write the API token ({e.strerror})") from None
    return _read(path)


def rotate_token(memory: Path) -> str:
    """A new token, swapped in whole (a reader never sees half of one); the old one stops working."""
    path = memory / TOKEN_FILE
    fresh = memory / f".{TOKEN_FILE}.new"
    token = _new()
    try:
        private_folder(memory)
        _make_room(path)
        fresh.unlink(missing_ok=True)
        _write(fresh, token)
        os.replace(fresh, path)
    except OSError as e:  # something left at .api-token.new, not removed (a folder), was said of the file beside it
        where = fresh if e.filename == str(fresh) and e.filename2 is None and os.path.lexists(fresh) else path
        raise EdgeRapError(f"{where}: cannot write the API token ({e.strerror})") from None
    return token


def _make_room(path: Path) -> None:
    """The token's path made ready for the new token: a file there is replaced; an empty folder (a container's bind
    mount of a token file not there yet leaves one) removed, so that the rotation a server's 503 asks for takes its
    place (os.replace puts no file over a folder: "cannot write the API token (Is a directory)"). Anything else is
    said and left as it is: a folder holding files; a link, FIFO, socket or device node, perhaps another program's
    (os.replace put the token in its place without a word, though the 503 said to move it away first)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    if not stat.S_ISDIR(mode):
        raise _misplaced(path, mode)
    try:
        path.rmdir()
    except OSError as e:
        raise EdgeRapError(f"{path}: a folder is in the API token's place ({e.strerror}); move it away, then run "
                           f"`edge-rap pair --rotate` again") from None


class TokenKeeper:
    """Holds the token's digest, re-read when the file changes; `check` compares digests in constant time."""

    def __init__(self, memory: Path):
        self.path = memory / TOKEN_FILE
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._digest = b""
        ensure_token(memory)
        self._folder = file_identity(memory)
        self._refresh()

    def _refresh(self) -> None:
        try:
            st = os.lstat(self.path)  # (what is there, never through a link: one to nowhere was the token gone, 401)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except (FileNotFoundError, NotADirectoryError):
            if memory_away(self.path.parent, self._folder):  # the whole memory: no token is wrong, none can be right
                raise DeviceError(self.path.parent, "the memory is not there (its drive unmounted or gone?); the "
                                                    "device answers again when it is back")
            # Gone (a link in its place moved away, as its 503 says): nothing is accepted until one is made, and no
            # token is wrong; as a 401 the household's right token was counted a guess, 429 after 10, the new one too
            raise DeviceError(self.path, "the API token is gone; run `edge-rap pair --rotate` on the device") from None
        except OSError as e:  # there, but not looked at (EIO, EACCES): the device's trouble, not a wrong token (401)
            raise _unreadable(self.path, e) from None
        with self._lock:
            if stamp == self._stamp:
                return
            self._digest = hashlib.sha256(_read(self.path).encode()).digest()
            self._stamp = stamp

    def check(self, token: str) -> bool:
        self._refresh()
        given = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        return bool(self._digest) and hmac.compare_digest(given, self._digest)
