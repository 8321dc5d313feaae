"""Uploaded photos: their type sniffed from the bytes (never the name or the declared type), their pixel count
checked from the header before anything is decoded, and handed to the memory API as files of our own naming.

The memory reads photos from paths (as the CLI gives them); an upload becomes a file in a private temporary
folder, named here, so no path ever comes from a request."""

from __future__ import annotations

import errno
import io
import logging
import re
import tempfile
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.memory.store import DiskFullError
from edge_rap.perceive.images import NotAnImage, max_pixels, past_bomb_limit, ready_pillow, signed_format, unreadable
from edge_rap.perceive.png_text import overpacked
from edge_rap.scratch import process_folder

#: Pillow's format name -> the file suffix the memory stores it under and the content type served.
FORMATS = {"JPEG": (".jpg", "image/jpeg"), "MPO": (".jpg", "image/jpeg"), "PNG": (".png", "image/png"),
           "WEBP": (".webp", "image/webp"), "AVIF": (".avif", "image/avif"), "HEIF": (".heic", "image/heic"),
           "TIFF": (".tif", "image/tiff"), "GIF": (".gif", "image/gif"), "BMP": (".bmp", "image/bmp")}


class UploadError(EdgeRapError):
    """A photo the API refuses, with the HTTP status that says why (415 not an image, 422 a damaged one, 413 too
    many pixels)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Photo:
    """An uploaded photo's bytes, what they are, and the label errors name it by."""

    data: bytes
    label: str
    suffix: str
    content_type: str


def sniff(data: bytes, label: str) -> Photo:
    """What the bytes are, from their header alone; a non-image is 415 and a bomb 413, before decoding."""
    from PIL import Image as PILImage

    ready_pillow()
    if not data:
        raise UploadError(f"{label}: empty file", 415)
    if (why := overpacked(data)) is not None:  # (before Pillow, which unpacks them all to read the header)
        raise UploadError(f"{label}: {why}", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as pil:
                kind, (width, height) = pil.format, pil.size
    except PILImage.DecompressionBombError as e:  # said with our limit where it is the lower, as the CLI says it
        raise UploadError(str(past_bomb_limit(label, e)), 413) from None
    except Exception as e:  # any failure to read a header: said as the CLI says it
        error = unreadable(data, label, e)
        raise UploadError(str(error), 415 if isinstance(error, NotAnImage) else 422) from None
    if kind not in FORMATS:
        raise UploadError(f"{label}: {kind} images are not accepted", 415)
    limit = max_pixels()
    if width * height > limit:
        raise UploadError(f"{label}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit "
                          f"is {limit / 1e6:g}", 413)
    return Photo(data, label, *FORMATS[kind])


def sniff_file(path: Path) -> str:
    """The content type of a stored file, from its bytes."""
    with open(path, "rb") as f:
        head = f.read(64)
    if (kind := signed_format(head)) is not None:
        return FORMATS[kind][1]
    if head[4:8] == b"ftyp":
        return "image/avif" if head[8:12] in (b"avif", b"avis") else "image/heic"
    return "application/octet-stream"


def temp_folder_error(e: OSError, use: str = "where uploads are written first", writes: bool = True) -> DeviceError:
    """An upload (or a download's backup, `use` says which) the temporary folder could not take, said as that
    folder's (507 full, else 503): a read-only, full or removed TMPDIR was "memory folder is not writable", or a 500,
    while the memory was sound. `writes`: the request would have changed the memory (only then is "nothing was
    changed" news)."""
    where = Path(tempfile.gettempdir())
    unchanged = "; nothing was changed" if writes else ""
    if e.errno == errno.ENOSPC:
        return DiskFullError(where, f"the device's temporary folder, {use}, is full{unchanged}")
    return DeviceError(where, f"the device's temporary folder, {use}, cannot be written ({e.strerror}){unchanged}")


@contextmanager
def as_files(photos: list[Photo]) -> Iterator[tuple[list[Path], dict[str, str]]]:
    """The photos as files in a private folder (removed after), and each file's path -> its label, to put
    the label back into the memory's messages."""
    try:
        made = tempfile.TemporaryDirectory(prefix="upload-", dir=process_folder(), ignore_cleanup_errors=True)
    except OSError as e:  # the device's trouble, never the request's: 503, not 500
        raise temp_folder_error(e) from None
    with made as folder:
        paths, labels = [], {}
        for k, photo in enumerate(photos):
            path = Path(folder) / f"photo-{k}{photo.suffix}"
            try:
                path.write_bytes(photo.data)
            except OSError as e:  # the device's trouble (its disk full), never the request's: 507 or 503, not 500
                raise temp_folder_error(e) from None
            paths.append(path)
            labels[str(path)] = photo.label
        named = _LABELS.set(labels)  # the lines the memory says of them meanwhile name them so too (`Labelled`)
        try:
            yield paths, labels
        except Exception as e:  # a failure no one expects, its traceback logged once it left here: it names them so
            setattr(e, _CARRIED, labels)  # too (it named the temporary path: `Labelled`)
            raise
        finally:
            _LABELS.reset(named)


#: The CLI's options that the memory's messages name, as an API caller sends the same: the form field.
FIELDS = {"--box": "the box field"}
_OPTION = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, FIELDS)) + r")\b")


def relabel(error: EdgeRapError, labels: dict[str, str]) -> str:
    """The memory's message with our temporary paths replaced by the labels the client knows, and the options
    it names by the fields the client sends ("give the box ... (--box)" told a phone to give a CLI option)."""
    return _named(_OPTION.sub(lambda m: FIELDS[m.group(1)], str(error)), labels)


def _named(text: str, labels: dict[str, str]) -> str:
    """`text` with our temporary paths replaced by the labels the client knows."""
    for path, label in labels.items():
        text = text.replace(path, label)
    return text


#: The labels of the uploads being remembered in this context (`as_files`): their temporary paths -> the labels.
_LABELS: ContextVar[dict[str, str] | None] = ContextVar("edge_rap_upload_labels", default=None)
#: The attribute an exception that left `as_files` carries its uploads' labels in: its traceback is logged after.
_CARRIED = "edge_rap_upload_labels"
_TRACEBACKS = logging.Formatter()


class Labelled(logging.Filter):
    """A handler's filter while a server runs: a line said of an upload as it is remembered (memory.py's "already a
    view"), and the traceback of a failure while it was (the server's "failed" and uvicorn's, logged after it), name
    it as the client sent it ("photo 2 (mug.jpg)"), never by the temporary path no one else knows."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        labels = _LABELS.get() or getattr(failure, _CARRIED, None)
        if not labels:
            return True
        if failure is not None and not record.exc_text:  # (formatted here, as a handler's formatter would, once)
            record.exc_text = _named(_TRACEBACKS.formatException(record.exc_info), labels)
        try:
            said = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the line: logging says so, not the caller
            return True
        record.msg, record.args = _named(said, labels), ()
        return True
