"""Decode untrusted image files safely: one clear error for anything unreadable, oversized or empty.

Pixels are upright: a camera's EXIF orientation is applied, so a phone photo stored sideways is seen (and its
boxes are given) the way every viewer shows it."""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import stat
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.bounds import why_refused
from edge_rap.errors import EdgeRapError
from edge_rap.output import quoted
from edge_rap.perceive.colour import to_srgb
from edge_rap.perceive.mp4 import track_kinds
from edge_rap.perceive.png_text import PNG_SIGNATURE, overpacked
from edge_rap.types import Box, Image
from edge_rap.userfiles import NOT_THERE, special_kind

#: Images whose header claims more megapixels than this are refused before decoding (decompression bombs);
#: EDGE_RAP_MAX_MEGAPIXELS changes it, up to Pillow's own guard (about 179 megapixels), which stays in force.
DEFAULT_MEGAPIXELS = 120.0
#: Decoded images are reduced so that their longer side is at most this; embedders never need more.
MAX_SIDE = 2048
#: Files larger than this are refused without reading them.
MAX_FILE_BYTES = 256 * 1024 * 1024
#: EXIF orientation (tag 0x0112) -> the transpose that makes the picture upright (as PIL's ImageOps).
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
            7: "TRANSVERSE", 8: "ROTATE_90"}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageFile:
    """The raw bytes of an image file, their content hash and the decoded pixels."""

    data: bytes
    sha256: str
    suffix: str
    image: Image


def _describe(path: str) -> str:
    """A path in a message: quoted where it holds a control character (its byte not UTF-8 `\\xff` there too, as
    everywhere: repr's `\\udcff`)."""
    return quoted(path) if any(ord(c) < 32 for c in path) else path


def read_image_file(path: str | Path, box: Box | None = None) -> ImageFile:
    """Read and decode an image file; raise EdgeRapError with a one-line reason if it is unusable."""
    data = _image_bytes(path)
    image = decode_image(data, str(path))
    if box is not None:
        image = crop(image, box)
    return ImageFile(data, hashlib.sha256(data).hexdigest(), _suffix_of(data, Path(path)), image)


def _image_bytes(path: str | Path) -> bytes:
    """An image file's bytes, once it is a regular file of a size that may be read."""
    if not str(path):  # Path("") is the current folder: say what was given instead
        raise EdgeRapError("an empty image path was given (an unset variable?)")
    p = Path(path)
    shown = _describe(str(path))
    try:
        status = p.stat()
    except FileNotFoundError:  # `-` is no stdin here: a photo is read whole, and a pipe is refused as below
        stdin = " (photos are read from files, not from stdin: give the photo's file)" if str(path) == "-" else ""
        raise EdgeRapError(f"{shown}: no such file{stdin}") from None
    except OSError as e:
        raise EdgeRapError(f"{shown}: cannot read ({e.strerror})") from None
    size = status.st_size
    if stat.S_ISDIR(status.st_mode):
        raise EdgeRapError(f"{shown}: is a folder, not an image")
    if (kind := special_kind(status.st_mode)) is not None:  # a pipe (`cat photo | ... /dev/stdin`), a device
        raise EdgeRapError(f"{shown}: is {kind}, not a photo file; give the photo's file")
    if size == 0:
        raise EdgeRapError(f"{shown}: empty file")
    if size > MAX_FILE_BYTES:
        raise EdgeRapError(f"{shown}: file is {size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB")
    try:
        return p.read_bytes()
    except OSError as e:
        raise EdgeRapError(f"{shown}: cannot read ({e.strerror})") from None


def thumbnail_jpeg(path: Path, side: int) -> bytes:
    """A stored photo as a JPEG whose longer side is at most `side`, upright and in sRGB, for a screen: a phone's
    12-megapixel photos shown as 80-pixel cards took megabytes each, and a browser may show no HEIC at all."""
    from PIL import Image as PILImage

    pixels = decode_image(_image_bytes(path), str(path), max_side=side).pixels
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, "JPEG", quality=85)
    return out.getvalue()


def _suffix_of(data: bytes, path: Path) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS:
        return ".heic"
    suffix = path.suffix.lower()
    return suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6 else ".img"


#: How files become pixels. Anything cached by a file's content hash (the VLM's image encodings) includes it,
#: so that changing the decoding (EXIF orientation applied; deep greyscale scaled, not clipped; colour profiles
#: converted to sRGB) misses the entries made before.
DECODING = "upright,deep-scaled,srgb"
#: The brands of an ISO-BMFF file (bytes 8-12) that mean a HEIF picture: what iPhones take by default.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}  # HEVC-coded: .heic
_HEIF_BRANDS = _HEIC_BRANDS | {b"mif1", b"msf1"}  # (the generic brands, which AVIF files may carry too)
#: ISO-BMFF brands that are no video: AVIF photos and sound (.m4a, .m4b audiobooks).
_NOT_VIDEO_BRANDS = _HEIF_BRANDS | {b"avif", b"avis", b"M4A ", b"M4B "}


#: The first bytes of the formats a photo is read in (HEIF and AVIF go by their brand): bytes that begin so are a
#: photo of that format, damaged where Pillow cannot read them (a PNG whose header fails its checksum), not some
#: other kind of file.
_SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF", b"GIF89a": "GIF",
               b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"BM": "BMP"}


#: The sizes a BMP's second header has (bytes 14-18), those Pillow reads: "BM" alone begins text too ("BMW ...").
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}


def signed_format(head: bytes) -> str | None:
    """Pillow's name of the photo format the bytes begin as ("PNG"), from their signature alone; None if none."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    kind = next((kind for magic, kind in _SIGNATURES.items() if head.startswith(magic)), None)
    if kind == "BMP" and int.from_bytes(head[14:18], "little") not in _BMP_HEADER_SIZES:
        return None
    return kind


#: A PBM, PGM or PPM header (or a PFM's): its kind, then white space and a number (or a comment) after it.
_PNM_HEADER = re.compile(rb"P[1-6fF][ \t\r\n]+[0-9#]")


def _taken_by_two_bytes(data: bytes) -> str | None:
    """The format Pillow takes `data` for by its first two bytes alone, which text begins with too ("BMW ...", "P1
    ..."): "BMP" or "PPM"; None for any other bytes."""
    return "BMP" if data[:2] == b"BM" else "PPM" if data[:1] == b"P" and data[1:2] in b"0123456fy" else None


def _headed_as(data: bytes) -> str | None:
    """The format bytes that Pillow took by two bytes alone are where what follows them is that format's header too:
    a BMP's reserved bytes (6-10) zero (so one cut before its second header is a BMP cut short, "BMW ..." text), a
    PPM's white space and size; None otherwise."""
    kind = _taken_by_two_bytes(data)
    if kind == "BMP":
        return kind if len(data) >= 10 and data[6:10] == bytes(4) else None
    return kind if kind == "PPM" and _PNM_HEADER.match(data) else None


def _is_video(data: bytes) -> bool:
    """Whether the bytes are a video file's: MP4 or MOV (an iPhone's Live Photo beside its HEIC) with a video track
    (or its index cut off), Matroska or WebM, AVI, MPEG-TS."""
    if data[4:8] == b"ftyp":
        return data[8:12] not in _NOT_VIDEO_BRANDS and b"vide" in (track_kinds(data) or {b"vide"})
    return (data[:4] == b"\x1a\x45\xdf\xa3" or (data[:4] == b"RIFF" and data[8:12] == b"AVI ")
            or (len(data) > 188 and data[0] == data[188] == 0x47))


#: Suffixes of the photo files a folder of concepts may hold (`eval`); anything Pillow (+ pillow-heif) reads.
#: .jpe and .jfif are JPEGs too (Windows saves a browser's image as .jfif).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".heic",
                  ".heif", ".hif", ".avif"}
#: The formats a file without a photo's suffix is taken for a photo in (`photo.jpg_large`, `IMG_0001`): not TIFF,
#: which camera RAW files (.dng, .nef) are too, whose pixels are not read here.
_SNIFFED_FORMATS = {"JPEG", "PNG", "WEBP", "HEIF", "AVIF", "BMP", "GIF"}
#: The thumbnail a camera writes beside each video (Canon's `MVI_0001.THM`, a GoPro's): a JPEG by its header, but a
#: 160x120 copy of the video's first frame, no photo: sorted first, it became a concept's reference.
_VIDEO_THUMBNAILS = {".thm"}


#: Photos by their suffix that are not read here (Pillow has no reader): taken for no photo, and said where a
#: folder's photos are counted (`eval`) rather than dropped unsaid.
_UNREAD_PHOTOS = {".jxl": "a JPEG XL photo", **dict.fromkeys(
    (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw"), "a camera RAW photo")}


def unread_photo(path: Path) -> str | None:
    """What a photo file that is not read here is ("a JPEG XL photo"); None for any other file."""
    return None if path.name.startswith(".") else _UNREAD_PHOTOS.get(path.suffix.lower())


def is_photo_file(path: Path, status: os.stat_result | None = None) -> bool:
    """Whether a folder's entry is taken for a photo: not hidden (the `._photo.jpg` sidecars macOS leaves on other
    disks are no photos, whatever their suffix), and a photo's suffix (whether or not it can be read, which is
    said when it is read), or a regular file whose header is a photo's (a video's thumbnail aside): left out, it
    would be dropped unsaid. Only `_worth_opening` files are opened to look. `status`: the entry's stat, where its
    folder's listing took it already (`eval`'s walk looks at each entry once)."""
    if path.name.startswith("."):
        return False
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    return path.suffix.lower() not in _VIDEO_THUMBNAILS and _worth_opening(path, status) and _is_picture(path)


def _worth_opening(path: Path, status: os.stat_result | None) -> bool:
    """Whether `path` is a regular file with bytes of its own on a disk, by one look (`status`, else a stat), False
    where `Path.is_file` is (no such file, a dangling link or a loop of links): a file removed between `is_file` and
    a second look for its size raised, and a folder source (`camera`) said the whole folder could not be listed.
    A kernel's file is never opened: /proc's say they are empty, and a link to /proc had /proc/kmsg read, which
    waits for the kernel's next message; sysfs says 4096 bytes of each, none on a disk (no block of its own, on a
    filesystem of none), and /sys/power/wakeup_count waits while a wakeup is handled."""
    try:
        status = status if status is not None else path.stat()
        if not stat.S_ISREG(status.st_mode) or status.st_size == 0:
            return False
        return status.st_blocks > 0 or os.statvfs(path).f_blocks > 0
    except OSError as e:
        if e.errno in NOT_THERE:
            return False
        raise


def _is_picture(path: Path) -> bool:
    """Whether Pillow identifies the file's header as one of _SNIFFED_FORMATS (nothing is decoded). A picture over
    Pillow's bomb limit is one (a phone's 200-megapixel photo): reading it says the limit, where dropping it here
    said nothing; the warning Pillow gives at half that limit is not written as a folder is listed."""
    from PIL import Image as PILImage

    ready_pillow()
    PILImage.init()
    try:  # (HEIF only where pillow-heif is installed, AVIF where Pillow was built with it)
        if _overpacked_file(path) is not None:
            return True  # a PNG: reading it says why it is not read
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(path, formats=[f for f in PILImage.OPEN if f in _SNIFFED_FORMATS]):
                return True
    except PILImage.DecompressionBombError:
        return True
    except Exception:  # not a picture, or unreadable: not taken for one
        return False


def _overpacked_file(path: Path) -> str | None:
    """`overpacked` of a file (read only where it begins as a PNG, and no further than a photo is read): Pillow,
    to read a PNG's header, unpacks every packed chunk before its pixels, seconds for a file of many."""
    with open(path, "rb") as f:
        head = f.read(len(PNG_SIGNATURE))
        return overpacked(head + f.read(MAX_FILE_BYTES)) if head == PNG_SIGNATURE else None


@functools.cache
def ready_pillow() -> None:
    """Pillow made ready to open photos: HEIF read through pillow-heif (where installed), and a PNG's text or colour
    profile unpacked up to the 64 MB that all its text may take: at Pillow's 1 MB a chunk, a photo whose editor's
    metadata (XMP and its history) unpacks past it was refused as corrupt, its pixels sound. (That a small file may
    unpack to so much costs no more than its bytes unpacked as pixels, under the same ratio.)"""
    from PIL import PngImagePlugin

    PngImagePlugin.MAX_TEXT_CHUNK = PngImagePlugin.MAX_TEXT_MEMORY
    _register_heif()


@functools.cache
def _register_heif() -> bool:
    """Let Pillow open HEIF (HEIC) photos through pillow-heif; False where it is not installed."""
    try:
        import pillow_heif

        pillow_heif.libheif_info()  # loads its C part and libheif, which its import postpones
    except (ImportError, OSError):  # not installed, or its bundled libheif cannot load on this machine
        return False
    pillow_heif.register_heif_opener()  # it applies the photo's rotation itself and reports orientation 1
    return True


def max_pixels() -> int:
    """The pixel limit, read at each decode so that a bad EDGE_RAP_MAX_MEGAPIXELS is one line, not an import error."""
    text = os.environ.get("EDGE_RAP_MAX_MEGAPIXELS", "").strip()
    try:
        megapixels = float(text) if text else DEFAULT_MEGAPIXELS
    except ValueError:
        megapixels = math.nan
    if why := why_refused(megapixels, positive=True, unit="megapixels"):
        raise EdgeRapError(f"EDGE_RAP_MAX_MEGAPIXELS must be {why}, not {quoted(text)}")
    return int(megapixels * 1_000_000)


def past_bomb_limit(shown: str, error: Exception) -> EdgeRapError:
    """A picture whose header claims more pixels than Pillow's limit against decompression bombs (`error`, its
    check, comes before ours): said with its size, from Pillow's words, and the limit in force, ours where it is the
    lower (a 200-megapixel photo was "over 179 megapixels", Pillow's number, under a limit of 120)."""
    from PIL import Image as PILImage

    bomb, limit = 2 * (PILImage.MAX_IMAGE_PIXELS or 0), max_pixels()
    claimed = re.match(r"Image size \((\d+) pixels\)", str(error))
    pixels = int(claimed[1]) if claimed else bomb
    # as many decimals as tell the two apart: a photo of 179.02 megapixels was "179", over a limit of "179" (178.96)
    places = next((n for n in range(7) if f"{pixels / 1e6:.{n}f}" != f"{bomb / 1e6:.{n}f}"), 0)
    size = f"{pixels / 1e6:.{places}f} megapixels" if claimed else f"over {bomb / 1e6:.0f} megapixels"
    most = f"{bomb / 1e6:.{places}f}"
    if limit < bomb:
        return EdgeRapError(f"{shown}: image is {size}; the limit is {limit / 1e6:g} (EDGE_RAP_MAX_MEGAPIXELS raises "
                            f"it up to {most}, Pillow's own limit against decompression bombs)")
    return EdgeRapError(f"{shown}: image is {size}; the limit is {most}, Pillow's own limit against "
                        "decompression bombs")


def decode_image(data: bytes, source: str = "<bytes>", max_side: int = MAX_SIDE) -> Image:
    """Decode bytes to RGB pixels, refusing bombs, truncated files and non-images with a clear message; a picture
    larger than `max_side` is reduced to it (a JPEG decoded at a reduced scale to start with)."""
    from PIL import Image as PILImage

    shown = _describe(source)
    limit = max_pixels()
    ready_pillow()
    if (why := overpacked(data)) is not None:
        raise EdgeRapError(f"{shown}: {why}")
    try:
        with warnings.catch_warnings():
            # Our limit, checked on the header's size before any decoding, decides below Pillow's hard guard;
            # its warning (at half that guard) would only repeat ours.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            pil = PILImage.open(io.BytesIO(data))
            width, height = pil.size
            if width <= 0 or height <= 0:
                raise EdgeRapError(f"{shown}: image has no pixels ({width}x{height})")
            if width * height > limit:
                raise EdgeRapError(
                    f"{shown}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit is "
                    f"{limit / 1e6:g} (set EDGE_RAP_MAX_MEGAPIXELS to raise it)"
                )
            if max(width, height) > max_side and pil.format in ("JPEG", "MPO"):
                pil.draft("RGB", (max_side, max_side))  # decode at a reduced scale: fast and small
            pil.load()  # decoding errors surface here, before anything else reads the file
            orientation = _orientation(pil)
            if max(pil.size) > max_side and pil.mode not in _NEAREST_MODES:
                # before any copy: each is 400 MB of a 100-megapixel photo; Pillow cannot `reduce` 16-bit
                # greyscale, which a small size (a card's) asks of it, so that is resampled in one step
                pil.thumbnail((max_side, max_side), reducing_gap=None if pil.mode.startswith("I;16") else 2.0)
            pil = _rgb(to_srgb(pil))
            if max(pil.size) > max_side:
                pil.thumbnail((max_side, max_side))  # a palette or 1-bit picture, which is shrunk only in RGB
            if orientation in _UPRIGHT:
                pil = pil.transpose(getattr(PILImage.Transpose, _UPRIGHT[orientation]))
                if orientation >= 5:  # a quarter turn: the upright picture's width is the stored height
                    width, height = height, width
            pixels = np.asarray(pil, dtype=np.uint8)
    except EdgeRapError:
        raise
    except PILImage.DecompressionBombError as e:
        raise past_bomb_limit(shown, e) from None
    except (OSError, SyntaxError, ValueError) as e:  # (UnidentifiedImageError is an OSError)
        raise unreadable(data, shown, e) from None
    if pixels.size == 0:
        raise EdgeRapError(f"{shown}: image has no pixels")
    reduced = (pixels.shape[1], pixels.shape[0]) != (width, height)
    return Image(pixels, source, (width, height) if reduced else None)


class NotAnImage(EdgeRapError):
    """Bytes that are no picture read here (text, a PDF, a video, a HEIF photo without pillow-heif), as against a
    picture damaged or cut short: the API answers 415 for the one, 422 for the other."""


def unreadable(data: bytes, shown: str, error: Exception) -> EdgeRapError:
    """Why Pillow could not read `data` (`error`), in one line: the same reason whether `decode_image` (the CLI,
    the memory) or the API's check of an upload's header met it."""
    from PIL import UnidentifiedImageError

    kind = signed_format(data) or _headed_as(data)  # (Pillow goes by "BM" or "P1" alone: text begins so too)
    if isinstance(error, (OSError, SyntaxError, ValueError)) and not isinstance(error, UnidentifiedImageError) \
            and (kind is not None or _taken_by_two_bytes(data) is None):
        return EdgeRapError(f"{shown}: corrupt or truncated image ({str(error).splitlines()[0][:120]})")
    if kind is not None:  # (Pillow's "cannot identify" for a PNG its header's CRC fails)
        return EdgeRapError(f"{shown}: corrupt or truncated image (a {kind} file Pillow cannot read)")
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not _register_heif():
        return NotAnImage(f"{shown}: a HEIF (HEIC) photo; reading it needs pillow-heif and its libheif "
                          "(pip install pillow-heif)")
    if _is_video(data):
        return NotAnImage(f"{shown}: a video, not a photo (`edge-rap run --source` watches one)")
    return NotAnImage(f"{shown}: not an image (unknown or corrupt format)")


#: Pillow modes holding more than 8 bits of grey: 16-bit PNG and TIFF, 32-bit integers, floats.
_DEEP_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
#: Pillow modes it resizes by the nearest pixel alone (a palette's indices cannot be averaged).
_NEAREST_MODES = {"P", "PA", "1"}


def _rgb(pil):
    """8-bit RGB. Deep greyscale is scaled to 8 bits by its container's range (Pillow's own conversion clips
    it, so a 16-bit photo came out white): 16-bit by 65535; 32-bit integers by 65535 (how 16-bit files are
    often read) unless they go beyond it, then by their maximum; floats by 1 when they stay within 0-1, else
    by their maximum. Negative and non-finite values are black."""
    from PIL import Image as PILImage

    if pil.mode not in _DEEP_MODES:
        return _on_white(pil).convert("RGB")
    values = np.asarray(pil, dtype=np.float32)
    values = np.where(np.isfinite(values), values, 0.0)
    top = float(values.max()) if values.size else 0.0
    if pil.mode.startswith("I;16"):
        full = 65535.0
    elif pil.mode == "I":
        full = max(65535.0, top)
    else:
        full = 1.0 if top <= 1.0 else top
    grey = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
    return PILImage.fromarray(grey, "L").convert("RGB")


def _on_white(pil):
    """A picture with transparency (a cut-out from a phone, a sticker) laid on white. Dropping the alpha would show
    what its transparent pixels still hold: black, or the very background the cut-out removed."""
    from PIL import Image as PILImage

    if pil.mode == "P" and "transparency" in pil.info or pil.mode in ("LA", "La", "PA", "RGBa"):
        pil = pil.convert("RGBA")
    if pil.mode != "RGBA":
        return pil
    return PILImage.alpha_composite(PILImage.new("RGBA", pil.size, (255, 255, 255, 255)), pil)


def _orientation(pil) -> int:
    """The EXIF orientation of an opened image; 1 (as stored) when absent or unreadable."""
    try:
        return int(pil.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not make the photo unreadable: it is shown as stored
        return 1


def upright_box(box: Box, stored_size: tuple[int, int], orientation: int) -> Box:
    """A box in a photo's stored pixels (stored_size = its width and height as stored) -> the same region of
    the upright photo, for an EXIF orientation (boxes saved before photos were read upright)."""
    w, h = stored_size
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    turned = {2: (w - x1, y0, w - x0, y1), 3: (w - x1, h - y1, w - x0, h - y0), 4: (x0, h - y1, x1, h - y0),
              5: (y0, x0, y1, x1), 6: (h - y1, x0, h - y0, x1), 7: (h - y1, w - x1, h - y0, w - x0),
              8: (y0, w - x1, y1, w - x0)}
    return Box(*turned.get(orientation, (x0, y0, x1, y1)))


def stored_orientation(path: Path) -> tuple[int, tuple[int, int]]:
    """A photo file's EXIF orientation (1 where it has none) and its size as stored."""
    from PIL import Image as PILImage

    ready_pillow()
    try:
        if (why := _overpacked_file(path)) is not None:
            raise EdgeRapError(f"{_describe(str(path))}: {why}")
        with PILImage.open(path) as pil:
            return _orientation(pil), pil.size
    except (OSError, SyntaxError, ValueError) as e:
        raise EdgeRapError(f"{_describe(str(path))}: cannot read ({str(e).splitlines()[0][:120]})") from None


def scale_box(box: Box, source: tuple[int, int], target: tuple[int, int]) -> Box:
    """A box from one image size (width, height) to another: decoded pixels <-> the file's pixels."""
    sx, sy = target[0] / source[0], target[1] / source[1]
    return Box(int(box.x0 * sx), int(box.y0 * sy), int(round(box.x1 * sx)), int(round(box.y1 * sy)))


def decoded_size(image: Image) -> tuple[int, int]:
    return int(image.pixels.shape[1]), int(image.pixels.shape[0])


#: The fewest pixels a side a crop keeps: less holds nothing to recognise.
MIN_CROP_SIDE = 4


def _crop_span(image: Image, box: Box) -> tuple[int, int, int, int]:
    """The box in the decoded pixels, clipped to them: x0, y0, x1, y1."""
    w, h = image.size
    sx, sy = image.pixels.shape[1] / w, image.pixels.shape[0] / h
    x0, y0 = max(0, int(box.x0 * sx)), max(0, int(box.y0 * sy))
    x1, y1 = min(image.pixels.shape[1], int(round(box.x1 * sx))), min(image.pixels.shape[0], int(round(box.y1 * sy)))
    return x0, y0, x1, y1


def croppable(image: Image, box: Box) -> bool:
    """Whether `crop` can cut `box` out of `image`: a few pixels' box at a thumbnail's edge cannot."""
    x0, y0, x1, y1 = _crop_span(image, box)
    return x1 - x0 >= MIN_CROP_SIDE and y1 - y0 >= MIN_CROP_SIDE


def require_croppable(image: Image, box: Box) -> None:
    """Raise, in one line naming the file, where `crop` cannot cut `box` out of `image`."""
    if not croppable(image, box):
        w, h = image.size
        raise EdgeRapError(f"{_describe(image.source)}: box {box.as_list()} keeps under {MIN_CROP_SIDE} pixels a "
                           f"side of the {w}x{h} image (too small, or outside it)")


def crop(image: Image, box: Box) -> Image:
    """Cut a box (in original pixels) out of an image; it is clipped to the image and must keep some pixels.
    The crop is a new image whose own pixels are its unit (its original size is the box's)."""
    require_croppable(image, box)
    x0, y0, x1, y1 = _crop_span(image, box)
    return Image(np.ascontiguousarray(image.pixels[y0:y1, x0:x1]), image.source)
