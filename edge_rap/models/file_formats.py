"""Is a model file what its name says? A cheap look at its first bytes, for files no sha256 vouches for.

Most registry entries carry no sha256 (the hub's files change with each re-upload), so a file put in place by
hand is trusted on first use. The commonest bad file is a web page saved in its place (`curl -O` without `-L`
saves the hub's redirect, a login page or an error), and llama.cpp or CTranslate2 then fail with a message that
does not name the file. This catches it where it is adopted, as it does a GGUF file cut short (gguf_extent).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from edge_rap.models.gguf_extent import Truncated, gguf_extent

#: The spec a CTranslate2 model.bin names after its version; faster-whisper needs a whisper one.
WHISPER_SPEC = b"Whisper"


def format_problem(path: Path, gguf: bool = False) -> str | None:
    """None when `path` looks like the kind of file its name says (`gguf`: a GGUF file whatever its name), else
    why not (a few words)."""
    try:
        with path.open("rb") as f:
            head = f.read(256)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not head:
        return "empty"
    if head.lstrip()[:1] == b"<":
        return "a web page (HTML or XML), not the model file: the download saved a page; fetch the file itself"
    if gguf or path.suffix == ".gguf":
        return _gguf_cut_short(path) if head[:4] == b"GGUF" else "not a GGUF file (it does not start with GGUF)"
    if path.name == "model.bin":
        return None if _names_whisper_spec(head) else "not a CTranslate2 whisper model"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            return f"not valid JSON ({str(e).splitlines()[0][:80]})"
    return None


def _gguf_cut_short(path: Path) -> str | None:
    """Why a GGUF file is shorter than its own tensor table says, or None (also when that cannot be judged)."""
    try:
        extent = gguf_extent(path)
    except Truncated:
        return "cut short: its header runs past the end of the file; the download or copy stopped early"
    except (ImportError, ValueError, OSError):  # no gguf package, or a type newer than it: llama.cpp will judge
        return None
    size = path.stat().st_size
    if size < extent:
        return f"cut short: {size:,} of the {extent:,} bytes its header describes; the download or copy stopped early"
    return None


def _names_whisper_spec(head: bytes) -> bool:
    """A CTranslate2 model.bin starts with its binary version (uint32) and its spec's name (uint16 length, bytes)."""
    if len(head) < 6:
        return False
    (length,) = struct.unpack_from("<H", head, 4)
    return head[6 : 6 + length].startswith(WHISPER_SPEC)
