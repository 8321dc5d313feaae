"""How many bytes a GGUF file says it holds: its header and tensor table end where its last tensor's data ends.

A download that stopped early, or a copy cut short by a full disk, still starts with `GGUF`; llama.cpp then
refuses it with a message that does not say why. Comparing the file's size with the extent its own table
describes names the fault when the file is adopted. Only the table is read (a few MB at most, strings skipped
by their lengths): gguf's own reader parses every vocabulary string and takes tens of seconds on a large
vocabulary. The block sizes of the quantisation types come from the `gguf` package (llama.cpp's own).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

#: GGUF metadata value types (the spec's numbering) with a fixed size in bytes; 8 is a string, 9 an array.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_ALIGNMENT_KEY = b"general.alignment"
_ARCHITECTURE_KEY = b"general.architecture"
_DEFAULT_ALIGNMENT = 32
#: The longest key or architecture name read: a longer one is skipped by its length, never copied (a forged length
#: of gigabytes inside a file that large was read whole into memory).
_SHORT = 256
#: Arrays of arrays deeper than this are no file llama.cpp reads (it takes no nested arrays): a forged file of
#: "an array of an array of ..." recursed until Python's limit, a traceback.
_MAX_NESTING = 8


class Truncated(Exception):
    """The table itself runs past the end of the file."""


def gguf_extent(path: Path) -> int:
    """The size in bytes the file's tensor table says it has; raises Truncated when the table itself is cut off.

    Raises ImportError without the `gguf` package and ValueError for a tensor type it does not know.
    """
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        reader, n_tensors, n_kv = _header(data)
        alignment = _DEFAULT_ALIGNMENT
        for _ in range(n_kv):
            key = reader.short_string()
            kind = reader.unpack("<I")
            if key == _ALIGNMENT_KEY and kind == 4:
                alignment = reader.unpack("<I")
            else:
                reader.skip_value(kind)
        end = 0
        for _ in range(n_tensors):
            reader.skip(reader.unpack("<Q"))  # its name
            dims = [reader.unpack("<Q") for _ in range(reader.unpack("<I"))]
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(reader.unpack("<I"))]
            offset = reader.unpack("<Q")
            elements = 1
            for d in dims:
                elements *= d
            end = max(end, offset + elements // block * type_size)
        data_start = -(-reader.at // alignment) * alignment
        return data_start + end


def gguf_architecture(path: Path) -> str | None:
    """The file's `general.architecture` ("clip" for a vision projector, "gemma3" for a language model), or None
    where it names none: which of the two files was given for the other. Raises as gguf_extent does."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        reader, _, n_kv = _header(data)
        for _ in range(n_kv):
            key, kind = reader.short_string(), reader.unpack("<I")
            if key == _ARCHITECTURE_KEY and kind == _STRING:
                name = reader.short_string()
                return None if name is None else name.decode("utf-8", "replace")
            reader.skip_value(kind)
    return None


def _header(data: mmap.mmap) -> tuple["_Reader", int, int]:
    """A reader at the first metadata key, the tensor count and the key count."""
    reader = _Reader(data)
    reader.take(4)  # magic, checked by the caller
    version = reader.unpack("<I")
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    return reader, reader.unpack("<Q"), reader.unpack("<Q")


class _Reader:
    """Little-endian reads from a mapped file that raise Truncated at its end."""

    def __init__(self, data: mmap.mmap):
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise Truncated
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return value

    def short_string(self) -> bytes | None:
        """A string of at most _SHORT bytes; None, skipped, for a longer one."""
        n = self.unpack("<Q")
        if n > _SHORT:
            self.skip(n)
            return None
        return self.take(n)

    def skip_value(self, kind: int, depth: int = 0) -> None:
        if kind in _FIXED:
            self.take(_FIXED[kind])
        elif kind == _STRING:
            self.skip(self.unpack("<Q"))
        elif kind == _ARRAY:
            if depth >= _MAX_NESTING:
                raise ValueError(f"GGUF arrays nested more than {_MAX_NESTING} deep")
            item, count = self.unpack("<I"), self.unpack("<Q")
            if item in _FIXED:
                self.skip(_FIXED[item] * count)
            else:
                for _ in range(count):
                    self.skip_value(item, depth + 1)
        else:
            raise ValueError(f"unknown GGUF value type {kind}")

    def skip(self, n: int) -> None:
        if self.at + n > len(self.data):
            raise Truncated
        self.at += n
