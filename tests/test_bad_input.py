"""Bad input a user can cause: one EdgeRapError with a one-line message, exit status 2 from the CLI with one
line on stderr and no traceback, and nothing already remembered is lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from readonly import run_read_only
from scenes import save, scene, scene_file

from edge_rap import cli
from edge_rap.app import open_memory, open_retriever
from edge_rap.errors import EdgeRapError
from edge_rap.generate.prompt import MAX_QUESTION
from edge_rap.perceive.images import read_image_file
from edge_rap.perceive.views import augmented_views
from edge_rap.types import Box


def views_per_photo() -> int:
    return len(augmented_views(np.zeros((64, 64, 3), np.uint8)))


@pytest.fixture
def memory(settings, embedder, tmp_path):
    """A memory that already knows <bo>."""
    mem = open_memory(settings, embedder)
    mem.remember("bo", [scene_file(tmp_path / "photos", 1)], "our dog", "dog")
    yield mem
    mem.close()


def assert_intact(settings, embedder, tmp_path, names=("bo",)) -> None:
    """Open the memory afresh: exactly the old concepts, <bo> still recognised from its photo, index searchable."""
    mem = open_memory(settings, embedder)
    try:
        assert sorted(c.name for c in mem.concepts()) == sorted(names)
        bo = mem.get("bo")
        assert (bo.description, bo.category, bo.views) == ("our dog", "dog", 1)
        for view in mem.store.views():
            assert Path(view.image_path).is_file()
        hits = open_retriever(mem, settings).recognize(read_image_file(tmp_path / "photos" / "scene1.png").image).hits
        assert hits and hits[0].concept.name == "bo"
    finally:
        mem.close()


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str) -> None:
    assert rc == 2, err
    assert err.startswith("edge-rap: ")
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert "Traceback" not in err


# --- bad image files ------------------------------------------------------------------------------------


def _jpeg_bytes(seed: int = 7, quality: int = 90) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(scene(seed)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png_bytes(seed: int = 7) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(scene(seed)).save(buf, format="PNG")
    return buf.getvalue()


def make_missing(d: Path) -> Path:
    return d / "nothing-here.jpg"


def make_folder(d: Path) -> Path:
    (d / "a-folder.jpg").mkdir()
    return d / "a-folder.jpg"


def make_pipe(d: Path) -> Path:
    """A named pipe, as `cat photo.jpg | edge-rap remember bo /dev/stdin` gives: it was "an empty file"."""
    os.mkfifo(d / "pipe.jpg")
    return d / "pipe.jpg"


def make_empty(d: Path) -> Path:
    (d / "empty.jpg").write_bytes(b"")
    return d / "empty.jpg"


def make_text(d: Path) -> Path:
    (d / "notes.jpg").write_text("this is not an image\n" * 20)
    return d / "notes.jpg"


def make_truncated_jpeg(d: Path) -> Path:
    data = _jpeg_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return d / "truncated.jpg"


def make_truncated_png(d: Path) -> Path:
    data = _png_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    return d / "truncated.png"


def _heic_bytes(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    from edge_rap.perceive.images import _register_heif

    assert _register_heif(), "pillow-heif is a dependency: HEIC is what iPhones take"
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="HEIF", quality=95)
    return out.getvalue()


def make_truncated_heic(d: Path) -> Path:
    data = _heic_bytes(scene(3))
    (d / "truncated.heic").write_bytes(data[: len(data) // 2])
    return d / "truncated.heic"


def make_corrupt_png(d: Path) -> Path:
    data = bytearray(_png_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8).tobytes()
    (d / "corrupt.png").write_bytes(bytes(data))
    return d / "corrupt.png"


def make_corrupt_jpeg_header(d: Path) -> Path:
    data = bytearray(_jpeg_bytes())
    data[2:200] = b"\x00" * 198  # destroys the JFIF/quantisation/Huffman segments after SOI
    (d / "corrupt-header.jpg").write_bytes(bytes(data))
    return d / "corrupt-header.jpg"


def make_bomb(d: Path) -> Path:
    """A 1-bit 20000 x 20000 PNG: a few kilobytes on disk, 400 megapixels (1.2 GB as RGB) decoded."""
    from PIL import Image

    path = d / "bomb.png"
    Image.new("1", (20000, 20000)).save(path, optimize=False)
    assert path.stat().st_size < 2_000_000
    return path


def make_200_megapixels(d: Path) -> Path:
    from PIL import Image

    path = d / "huge.png"
    Image.new("1", (20000, 10000), 1).save(path)
    return path


BAD_FILES = {
    "missing": (make_missing, "no such file"),
    "folder": (make_folder, "folder"),
    "empty": (make_empty, "empty"),
    "pipe": (make_pipe, "is a pipe, not a photo file"),
    "text": (make_text, "not an image"),
    "truncated-jpeg": (make_truncated_jpeg, "truncated"),
    "truncated-png": (make_truncated_png, "truncated"),
    "corrupt-png": (make_corrupt_png, "corrupt"),
    "truncated-heic": (make_truncated_heic, "corrupt|truncated|not an image"),
    "corrupt-jpeg-header": (make_corrupt_jpeg_header, "corrupt|not an image"),
    "bomb": (make_bomb, "megapixels|bomb"),
    "200-megapixels": (make_200_megapixels, "megapixels|bomb"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_image_file_refused_and_nothing_lost(kind, memory, settings, embedder, tmp_path, capsys):
    make, expected = BAD_FILES[kind]
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    path = make(bad_dir)
    files_before = sorted(p for p in (settings.memory / "images").rglob("*") if p.is_file())

    with pytest.raises(EdgeRapError, match=expected) as e:
        memory.remember("newcomer", [path])
    assert "\n" not in str(e.value)
    assert str(path) in str(e.value)  # says which file
    with pytest.raises(EdgeRapError, match=expected):
        memory.add_views("bo", [path])
    with pytest.raises(EdgeRapError, match=expected):
        read_image_file(path)

    rc, out, err = run_cli(capsys, ["remember", "newcomer", str(path), "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert out == ""
    rc, out, err = run_cli(capsys, ["add-views", "bo", str(path), "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)

    # recognize reports the bad file on one line, exits 2, and still answers for the good one
    good = tmp_path / "photos" / "scene1.png"
    rc, out, err = run_cli(capsys, ["recognize", str(path), str(good), "--json", "--memory", str(settings.memory)])
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["image"] == str(path) and lines[0]["concepts"] == [] and lines[0]["error"]
    assert lines[1]["concepts"][0]["name"] == "bo"

    assert sorted(p for p in (settings.memory / "images").rglob("*") if p.is_file()) == files_before
    assert_intact(settings, embedder, tmp_path)


def test_an_empty_image_path_is_said_as_empty_not_as_the_current_folder(memory, settings, capsys):
    with pytest.raises(EdgeRapError, match="an empty image path was given"):
        read_image_file("")
    rc, out, err = run_cli(capsys, ["recognize", "", "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert "empty image path" in err and "folder" not in err


def test_pixel_limit_is_configurable(memory, settings, embedder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", "0.09")  # 300 x 300
    big = save(tmp_path / "big.jpg", scene(3, width=301, height=300))  # just over
    small = save(tmp_path / "small.jpg", scene(4, width=300, height=300))  # exactly at the limit
    with pytest.raises(EdgeRapError, match="301x300") as e:
        memory.remember("big", [big])
    assert "EDGE_RAP_MAX_MEGAPIXELS" in str(e.value)
    rc, _, err = run_cli(capsys, ["remember", "big", str(big), "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert memory.remember("small", [small]).views == 1
    assert_intact(settings, embedder, tmp_path, names=("bo", "small"))


@pytest.mark.parametrize("value, told", [("abc", "a number"), ("-5", "more than 0 megapixels"), ("nan", "a number"),
                                         ("inf", "a finite number")])  # inf is positive: "a positive number" misled
def test_a_bad_pixel_limit_is_one_line_when_decoding(value, told, memory, settings, tmp_path, monkeypatch, capsys):
    env = {**os.environ, "EDGE_RAP_MAX_MEGAPIXELS": value}
    imported = subprocess.run([sys.executable, "-c", "import edge_rap.perceive.images, edge_rap.cli"], env=env,
                              capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr  # read when decoding, not at import
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", value)
    photo = scene_file(tmp_path / "photos", 2)
    with pytest.raises(EdgeRapError, match="EDGE_RAP_MAX_MEGAPIXELS"):
        read_image_file(photo)
    rc, _, err = run_cli(capsys, ["remember", "newcomer", str(photo), "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert f"EDGE_RAP_MAX_MEGAPIXELS must be {told}, not {value!r}" in err


def test_decoding_leaves_pillows_own_guard_alone(tmp_path):
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    assert before is not None
    read_image_file(scene_file(tmp_path, 2))
    with pytest.raises(EdgeRapError, match="megapixels"):
        read_image_file(make_bomb(tmp_path))
    assert Image.MAX_IMAGE_PIXELS == before  # no process-wide change that other code in the process would see


def test_a_picture_past_pillows_guard_is_refused_with_our_limit(tmp_path, monkeypatch):
    # Pillow's check comes first: 400 megapixels were refused as "over 179 megapixels, Pillow's own limit", where
    # the limit in force is ours (a raised one past Pillow's is still said as Pillow's)
    # (and a 400-megapixel one was "over 179 megapixels", Pillow's number: it is said with its own size)
    bomb = make_bomb(tmp_path)
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", "150")
    with pytest.raises(EdgeRapError, match=r": image is 400 megapixels; the limit is 150 \(EDGE_RAP_MAX_MEGAPIXELS "
                                           r"raises it up to 179, Pillow's own limit against decompression bombs\)$"):
        read_image_file(bomb)
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", "100000")
    with pytest.raises(EdgeRapError, match=r": image is 400 megapixels; the limit is 179, Pillow's own limit against "
                                           r"decompression bombs$"):
        read_image_file(bomb)


def test_a_picture_just_past_pillows_guard_is_said_with_numbers_that_tell_it_from_the_limit(tmp_path, monkeypatch):
    # 13380 x 13380 is 179.02 megapixels, past Pillow's 178.96: "image is 179 megapixels; the limit is 179"
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("1", (13380, 13380)).save(path, optimize=False)
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", "150")
    with pytest.raises(EdgeRapError, match=r": image is 179\.02 megapixels; the limit is 150 \(EDGE_RAP_MAX_MEGAPIXELS "
                                           r"raises it up to 178\.96, Pillow's own"):
        read_image_file(path)
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", "100000")
    with pytest.raises(EdgeRapError, match=r": image is 179\.02 megapixels; the limit is 178\.96, Pillow's own limit"):
        read_image_file(path)


def test_photo_under_the_stated_limit_is_accepted(tmp_path):
    # Our limit (max_pixels()), not Pillow's ~89.5 MP warning, decides: a 100 MP camera's photo is fine.
    from PIL import Image

    import edge_rap.perceive.images

    path = tmp_path / "95mp.png"
    Image.new("1", (10_000, 9_500), 1).save(path)
    assert 10_000 * 9_500 < edge_rap.perceive.images.max_pixels()
    image = read_image_file(path).image
    assert max(image.pixels.shape[:2]) <= 2048


def test_a_thin_photo_is_refused_with_the_files_own_size(memory, tmp_path):
    # Decoded reduced to 1 x 2048, the message must still say the size the user's file has.
    path = save(tmp_path / "thin.png", np.random.default_rng(3).integers(0, 255, (30_000, 1, 3), np.uint8))
    with pytest.raises(EdgeRapError, match=r"thin.png has no detail \(1 x 30000 pixels"):
        memory.remember("thin", [path])


@pytest.mark.parametrize("kind", ["JPEG", "MPO"])  # MPO: what many phones write (a JPEG and its previews)
def test_large_photo_is_decoded_reduced_but_boxed_in_original_pixels(tmp_path, kind):
    from PIL import Image

    path = tmp_path / "large.jpg"
    picture = Image.fromarray(scene(5)).resize((4001, 2999))
    picture.save(path, kind, quality=80, **({"save_all": True, "append_images": [picture]} if kind == "MPO" else {}))
    assert Image.open(path).format == kind
    image = read_image_file(path).image
    assert max(image.pixels.shape[:2]) <= 2048
    assert image.full_box.as_list() == [0, 0, 4001, 2999]


def test_an_iphone_heic_photo_is_read(tmp_path):
    picture = scene(4)
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(_heic_bytes(picture))
    pixels = read_image_file(path).image.pixels
    assert pixels.shape == picture.shape
    assert np.abs(pixels.astype(int) - picture).mean() < 8  # lossy, but the same picture


def test_a_heic_photo_is_stored_as_heic_whatever_its_name(tmp_path):
    path = tmp_path / "IMG_0003.jpg"  # named by a careless converter
    path.write_bytes(_heic_bytes(scene(4)))
    assert read_image_file(path).suffix == ".heic"


def test_a_pillow_heif_whose_libheif_cannot_load_leaves_other_photos_readable(tmp_path, monkeypatch):
    # pillow-heif's import succeeds and postpones loading libheif; that failure must not reach a PNG's decoding.
    import sys
    import types

    from edge_rap.perceive.images import _register_heif

    def broken():
        raise ImportError("libheif.so.1: cannot open shared object file")

    monkeypatch.setitem(sys.modules, "pillow_heif", types.SimpleNamespace(libheif_info=broken,
                                                                           register_heif_opener=broken))
    _register_heif.cache_clear()
    try:
        assert not _register_heif()
        assert read_image_file(scene_file(tmp_path, 2)).image.pixels.ndim == 3
    finally:
        monkeypatch.undo()
        _register_heif.cache_clear()


def test_a_video_given_as_a_photo_says_so(tmp_path):
    # "not an image (unknown or corrupt format)" sent a household looking for damage in an iPhone's Live Photo
    # video (IMG_0001.MOV beside IMG_0001.HEIC) or any clip it meant to give `run`.
    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "IMG_0001.mp4"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.write(scene(1, 64, 48))
    writer.release()
    with pytest.raises(EdgeRapError, match=r"IMG_0001.mp4: a video, not a photo \(`edge-rap run --source` watches"):
        read_image_file(tmp_path / "IMG_0001.mp4")


def test_a_heic_photo_without_pillow_heif_says_what_is_missing(tmp_path, monkeypatch):
    from PIL import Image

    import edge_rap.perceive.images

    path = tmp_path / "IMG_0002.heic"
    path.write_bytes(_heic_bytes(scene(4)))
    monkeypatch.setattr(edge_rap.perceive.images, "_register_heif", lambda: False)
    monkeypatch.setattr(Image, "ID", [name for name in Image.ID if name != "HEIF"])  # as if never installed
    with pytest.raises(EdgeRapError, match="HEIF .* needs pillow-heif"):
        read_image_file(path)


@pytest.mark.parametrize("kind", ["16-bit PNG", "32-bit TIFF", "float TIFF"])
def test_deep_greyscale_photo_keeps_its_tones(tmp_path, kind):
    # Pillow's own conversion clips values above 255, so a 16-bit photo came out almost white.
    from PIL import Image

    tones = np.tile(np.arange(256, dtype=np.uint8), (8, 1))  # 8-bit truth: a left-to-right ramp
    deep = {"16-bit PNG": tones.astype(np.uint16) * 257, "32-bit TIFF": tones.astype(np.int32) * 257,
            "float TIFF": tones.astype(np.float32) / 255}[kind]
    path = tmp_path / ("deep.png" if "PNG" in kind else "deep.tif")
    Image.fromarray(deep).save(path)
    pixels = read_image_file(path).image.pixels
    assert pixels.shape == (8, 256, 3)
    assert np.abs(pixels[..., 1].astype(int) - tones).max() <= 1


@pytest.mark.parametrize("kind", ["float with an infinity", "float beyond 1", "32-bit beyond 16 bits"])
def test_deep_greyscale_outside_its_usual_range_is_scaled_by_its_maximum(tmp_path, kind):
    from PIL import Image

    tones = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    deep = {"float with an infinity": tones.astype(np.float32) / 255, "float beyond 1": tones.astype(np.float32) * 4,
            "32-bit beyond 16 bits": tones.astype(np.int32) * 65793}[kind]
    if kind == "float with an infinity":
        deep[0, 0] = np.inf  # one broken pixel must not darken the rest
    Image.fromarray(deep).save(tmp_path / "deep.tif")
    pixels = read_image_file(tmp_path / "deep.tif").image.pixels[..., 0].astype(int)
    assert np.abs(pixels[1:] - tones[1:]).max() <= 1


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_a_cut_out_with_transparency_is_seen_on_white(tmp_path, mode):
    """A phone's cut-out keeps the background it removed under alpha 0: read as RGB without its alpha, that
    background came back (here red) and was embedded with the thing."""
    from PIL import Image

    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[...] = (200, 30, 30, 0)  # the cut-away background, transparent
    rgba[10:30, 10:30] = (20, 40, 160, 255)  # the thing, opaque
    rgba[10:30, 5] = (20, 40, 160, 128)  # an edge pixel, half covering white
    picture = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        picture = picture.convert("LA")
    elif mode == "P":  # a palette: 0 the cut-away background (transparent), 1 the thing
        picture = Image.fromarray((rgba[..., 3] > 0).astype(np.uint8), "P")
        picture.putpalette([200, 30, 30, 20, 40, 160])
        picture.info["transparency"] = 0
    picture.save(tmp_path / "cut-out.png")
    pixels = read_image_file(tmp_path / "cut-out.png").image.pixels.astype(int)
    assert (pixels[0, 0] == 255).all() and (pixels[39, 39] == 255).all()
    thing = pixels[20, 20]
    assert thing.max() < 200  # the thing is kept as it is
    if mode != "P":  # a palette's transparency is all or nothing
        assert (np.abs(pixels[20, 5] - (thing + 255) / 2) <= 2).all()


def test_a_large_deep_photo_is_reduced(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((3000, 4000), 40000, np.uint16)).save(tmp_path / "big16.png")
    image = read_image_file(tmp_path / "big16.png").image
    assert image.pixels.shape == (1536, 2048, 3) and image.full_box.as_list() == [0, 0, 4000, 3000]
    assert abs(int(image.pixels[0, 0, 0]) - round(40000 / 257)) <= 1


def test_a_large_photo_is_reduced_before_it_is_copied(tmp_path):
    # A 100-megapixel PNG (PNG cannot be decoded at a smaller scale, as JPEG is) was copied whole into RGB before
    # it was reduced: two copies of 400 MB at once, in the companion API's process too. Measured in a process of
    # its own, from when the file's bytes are read.
    from PIL import Image

    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(tmp_path / "big.png", compress_level=1)
    probe = ("import re, sys\n"  # the peak of this process's own memory (ru_maxrss would be pytest's, inherited)
             "from edge_rap.perceive.images import decode_image\n"
             "peak = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
             "data = open(sys.argv[1], 'rb').read()\n"
             "before = peak()\n"
             "pixels = decode_image(data).pixels\n"
             "print(peak() - before, *pixels.shape, *pixels[0, 0])")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "big.png")], capture_output=True, text=True,
                          check=True)
    grew_kib, *rest = map(int, done.stdout.split())
    assert rest == [1365, 2048, 3, 10, 200, 30]
    one_copy_kib = 6000 * 4000 * 4 / 1024  # Pillow keeps RGB in 4 bytes a pixel
    assert grew_kib < 1.8 * one_copy_kib  # the decoded image, and the reduction's own passes: not a second copy


def test_a_large_cut_out_is_reduced_and_seen_on_white(tmp_path):
    from PIL import Image

    rgba = np.zeros((40, 4100, 4), np.uint8)
    rgba[:, 2000:2100] = (20, 40, 160, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut-out.png")
    pixels = read_image_file(tmp_path / "cut-out.png").image.pixels.astype(int)
    assert pixels.shape == (20, 2048, 3) and (pixels[:, 0] == 255).all()
    assert (np.abs(pixels[10, 1025] - (20, 40, 160)) <= 2).all()


@pytest.mark.parametrize("orientation", range(1, 10))
def test_a_photo_with_an_exif_orientation_is_read_upright(tmp_path, orientation):
    # What every viewer shows (PIL's own ImageOps.exif_transpose is the reference); 9 is not a valid value.
    from PIL import Image, ImageOps

    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (255, 0, 0)  # one red corner: every turn and flip moves it somewhere else
    path = tmp_path / f"o{orientation}.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    image = read_image_file(path).image
    assert np.array_equal(image.pixels, upright)
    assert image.full_box.as_list() == [0, 0, upright.shape[1], upright.shape[0]]


@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_a_large_turned_photo_is_reduced_and_boxed_in_upright_pixels(tmp_path, orientation):
    from PIL import Image

    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation  # 5-8: stored landscape, shown as a portrait
    Image.fromarray(scene(5)).resize((4000, 3000)).save(path, quality=80, exif=exif)
    image = read_image_file(path).image
    portrait = orientation >= 5
    assert (image.pixels.shape[0] > image.pixels.shape[1]) == portrait and max(image.pixels.shape[:2]) <= 2048
    assert image.full_box.as_list() == ([0, 0, 3000, 4000] if portrait else [0, 0, 4000, 3000])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_box_in_stored_pixels_turns_with_the_photo(orientation):
    # Mark a box in the stored picture, turn the picture as a viewer does: the mark is where upright_box says.
    from PIL import Image

    from edge_rap.perceive.images import upright_box

    stored = np.zeros((40, 60), np.uint8)
    box = Box(10, 5, 30, 15)
    stored[box.y0:box.y1, box.x0:box.x1] = 255
    transposes = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                  7: "TRANSVERSE", 8: "ROTATE_90"}
    picture = Image.fromarray(stored)
    if orientation in transposes:
        picture = picture.transpose(getattr(Image.Transpose, transposes[orientation]))
    ys, xs = np.nonzero(np.asarray(picture))
    assert upright_box(box, (60, 40), orientation) == Box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_boxes_saved_before_photos_were_read_upright_turn_with_them(memory, tmp_path):
    # A memory of the previous version: a --box in the stored pixels of a photo shown turned (EXIF 6).
    from PIL import Image

    from edge_rap.memory.store import Store

    path = tmp_path / "sideways.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(scene(7)).resize((600, 400)).save(path, exif=exif)
    mug = memory.remember("mug", [path], box=Box(250, 100, 350, 200))  # upright pixels: the photo is 400 x 600
    root = memory.store.root
    before = {v.id: v.box for v in memory.store.views() if v.concept_id != mug.id}
    memory.close()
    db = sqlite3.connect(root / "memory.sqlite", isolation_level=None)
    # The same region in the stored 600 x 400 pixels: stored (x, y) is upright (400 - y, x).
    db.execute("UPDATE views SET box = '100,50,200,150' WHERE concept_id = ?", (mug.id,))
    db.execute("PRAGMA user_version = 2")
    db.close()
    for _ in range(2):  # opened twice: turned once, not twice
        store = Store(root)
        assert {v.box for v in store.views() if v.concept_id == mug.id} == {Box(250, 100, 350, 200)}
        assert {v.id: v.box for v in store.views() if v.concept_id != mug.id} == before  # upright photos: as they were
        store.close()


# --- a --memory that is not a memory, an embedder that is not the memory's ------------------------------------


def _not_a_memory(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "not-a-memory"
    if kind == "file":
        path.write_text("notes\n")
    elif kind == "foreign-folder":
        path.mkdir()
        (path / "holiday.jpg").write_bytes(b"")
    return path


@pytest.mark.parametrize("kind", ["missing", "file", "foreign-folder"])
def test_a_command_on_a_memory_that_is_not_there_is_one_line(kind, tmp_path, settings, capsys):
    # "none of my concepts" with exit 0 would be a silent wrong answer for a mistyped --memory, and a change
    # would make a new memory there and say "no concept named ...": only remember and import-rap make one
    path = _not_a_memory(kind, tmp_path)
    photo = scene_file(tmp_path / "photos", 1)
    for argv in (["concepts"], ["recognize", str(photo)], ["ask", "--image", str(photo)], ["ask", "who is bo?"],
                 ["export-rap", str(tmp_path / "export")], ["events"], ["events", "--json"], ["reindex"],
                 ["forget", "bo"], ["rename", "bo", "bobo"], ["edit", "bo", "--description", "x"],
                 ["add-views", "bo", str(photo)],
                 ["run", "--source", str(photo.parent), "--max-frames", "1", "--mute"],
                 ["serve", "--host", "192.0.2.1"]):  # (an address no machine has: never serves, if not refused)
        rc, out, err = run_cli(capsys, [*argv, "--memory", str(path)])
        assert_one_line_error(rc, err)
        assert str(path) in err and out == "", (argv, err)
    assert path.exists() == (kind != "missing")  # nothing was created
    assert kind != "foreign-folder" or sorted(p.name for p in path.iterdir()) == ["holiday.jpg"]
    assert not (tmp_path / "export").exists()


def test_a_file_given_as_the_memory_to_a_command_that_makes_one_is_said_to_be_a_file(tmp_path, settings, capsys):
    # remember and import-rap, which may make a new memory, said "cannot write (File exists)"
    path = _not_a_memory("file", tmp_path)
    database = tmp_path / "rap" / "database.json"
    database.parent.mkdir()
    database.write_text(json.dumps({"concept_dict": {"<bo>": {"name": "bo", "image": "./scene1.png"}}}))
    photo = scene_file(database.parent, 1)
    for argv in (["remember", "bo", str(photo)], ["import-rap", str(database)]):
        rc, out, err = run_cli(capsys, [*argv, "--memory", str(path)])
        assert_one_line_error(rc, err)
        assert err == f"edge-rap: {path}: is a file, not a memory folder (check --memory)\n" and out == "", argv
    assert path.read_text() == "notes\n"


def test_a_pipe_given_as_the_memory_is_said_to_be_a_pipe(tmp_path, settings, capsys):
    # it was said to be "a file, not a memory folder"
    os.mkfifo(tmp_path / "pipe")
    for argv in (["concepts"], ["remember", "bo", str(scene_file(tmp_path / "photos", 1))],
                 ["restore", str(tmp_path / "photos" / "scene1.png")]):
        rc, out, err = run_cli(capsys, [*argv, "--memory", str(tmp_path / "pipe")])
        assert_one_line_error(rc, err)
        assert err == f"edge-rap: {tmp_path / 'pipe'}: is a pipe, not a memory folder (check --memory)\n", argv


def test_a_memory_linked_to_a_folder_that_is_not_there_is_said_so(tmp_path, settings, capsys):
    # a memory kept on a drive, linked to, with the drive not mounted: remember said "cannot write (File exists)",
    # as for a file, and the readers of the default home answered "no concepts remembered yet"
    drive = tmp_path / "usb" / "edge-rap"
    link = tmp_path / "memory-link"
    link.symlink_to(drive)
    photo = scene_file(tmp_path / "photos", 1)
    for argv in (["remember", "bo", str(photo)], ["concepts"], ["backup", str(tmp_path / "b.tar")]):
        rc, out, err = run_cli(capsys, [*argv, "--memory", str(link)])
        assert_one_line_error(rc, err)
        assert err == f"edge-rap: {link}: a link to {drive}, which is not there (a drive not mounted? else make " \
                      "that folder, or check --memory)\n" and out == "", argv
    assert not (tmp_path / "usb").exists() and not (tmp_path / "b.tar").exists() and link.is_symlink()


def test_a_memory_or_archive_through_a_link_that_leads_back_to_itself_is_said_so(tmp_path, settings, capsys):
    # `--memory` through a link loop was a traceback (remember, concepts, backup: "Too many levels of symbolic
    # links"), and restore said it was "a link to loop2, which is not there"; a backup file so linked was "no such
    # backup file"
    loop, other = tmp_path / "loop1", tmp_path / "loop2"
    loop.symlink_to(other)
    other.symlink_to(loop)
    photo = scene_file(tmp_path / "photos", 1)
    (tmp_path / "b.tar").write_bytes(b"never read")
    for memory in (loop, loop / "memory"):
        for argv in (["remember", "bo", str(photo)], ["concepts"], ["backup", str(tmp_path / "new.tar")],
                     ["restore", str(tmp_path / "b.tar")]):
            rc, out, err = run_cli(capsys, [*argv, "--memory", str(memory)])
            assert_one_line_error(rc, err)
            assert err == f"edge-rap: {loop}: a link that leads back to itself, not a memory folder (check " \
                          "--memory)\n" and out == "", argv
    rc, out, err = run_cli(capsys, ["restore", str(loop / "b.tar"), "--memory", str(tmp_path / "memory")])
    assert err == f"edge-rap: {loop}: a link that leads back to itself, not a backup file\n" and rc == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "loop1", "loop2", "photos"]


@pytest.mark.parametrize("existed", [False, True])
def test_a_command_that_fails_before_its_first_write_makes_no_memory(existed, tmp_path, settings, capsys):
    # an empty folder left behind would be taken by every later command for a memory: a mistyped --memory
    # would no longer be caught; a folder that was there (empty) stays, untouched
    path = tmp_path / "new-memory"
    if existed:
        path.mkdir()
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    database = tmp_path / "rap" / "database.json"
    database.parent.mkdir()
    database.write_text(json.dumps({"concept_dict": {"<bo>": {"name": "bo", "image": "./notes.jpg"}}}))
    (database.parent / "notes.jpg").write_text("not a photo\n")
    photo = scene_file(tmp_path / "photos", 1)
    for argv in (["remember", "bo", str(text)], ["remember", "a/b", str(photo)],
                 ["remember", "bo", str(photo), "--box", "0,0,4,4"]):
        rc, _, err = run_cli(capsys, [*argv, "--memory", str(path)])
        assert_one_line_error(rc, err)
    rc, out, err = run_cli(capsys, ["import-rap", str(database), "--json", "--memory", str(path)])
    assert rc == 1 and list(json.loads(out)["failed"]) == ["bo"]
    assert path.exists() == existed and (not existed or list(path.iterdir()) == [])
    rc, _, err = run_cli(capsys, ["concepts", "--memory", str(path)])
    assert rc == (0 if existed else 2) and ("no such memory folder" in err) != existed


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_memory_whose_database_is_gone_is_refused_by_readers_too(memory, settings, tmp_path, capsys, damage):
    # its photos and index remain: "no concepts remembered yet" would be a wrong answer, as `remember` knows
    memory.close()
    photo = scene_file(tmp_path / "photos", 1)
    database = settings.memory / "memory.sqlite"
    database.write_bytes(b"") if damage == "truncate" else database.unlink()
    before = _files(settings.memory)
    for argv in (["concepts"], ["recognize", str(photo)], ["ask", "who is bo?"], ["ask", "--image", str(photo)],
                 ["export-rap", str(tmp_path / "export")], ["events", "--name", "bo"], ["remember", "bo", str(photo)],
                 ["events"], ["pair", "--json"]):  # these two open no database: "no events", and a token written
        rc, out, err = run_cli(capsys, [*argv, "--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
        assert "missing or empty" in err and out == "", (argv, err)
    assert _files(settings.memory) == before


@pytest.mark.parametrize("option", ["--device", "--embedder"])
def test_an_empty_device_or_embedder_is_refused_not_taken_as_the_default(tmp_path, capsys, option):
    # `--device "$UNSET"` ran with the auto-detected profile, exit 0
    for empty in ("", " "):
        rc, out, err = run_cli(capsys, ["doctor", option, empty, "--memory", str(tmp_path / "memory")])
        assert_one_line_error(rc, err)
        assert f"{option} {empty!r} is empty (an unset variable?)" in err and out == ""


@pytest.mark.parametrize("argv", [["forget", "bo"], ["concepts"]])
def test_an_empty_memory_flag_is_not_the_default_home(memory, settings, capsys, monkeypatch, argv):
    # `--memory "$UNSET_VAR"` must not act on the household's real memory (the default home)
    monkeypatch.setenv("EDGE_RAP_HOME", str(settings.memory))
    for empty in ("", " "):
        rc, out, err = run_cli(capsys, [*argv, "--memory", empty])
        assert_one_line_error(rc, err)
        assert "--memory" in err and out == ""
    assert [c.name for c in memory.concepts()] == ["bo"]


def test_an_empty_export_folder_or_database_path_is_not_the_current_folder(memory, settings, capsys, tmp_path,
                                                                            monkeypatch):
    """`export-rap "$UNSET"` exported into the current folder (or replaced an export there); `import-rap ""`
    said "[Errno 21] Is a directory: '.'"."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for argv in (["export-rap", ""], ["export-rap", " "], ["import-rap", ""]):
        rc, out, err = run_cli(capsys, [*argv, "--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
        assert "is empty (an unset variable?)" in err and out == "", (argv, err)
    assert list(work.iterdir()) == []


def test_ask_refuses_a_question_over_the_apis_limit(memory, settings, capsys):
    # `ask` took 10 000 characters (a model's whole context) where POST /api/ask refused them with 422
    rc, out, err = run_cli(capsys, ["ask", "x" * (MAX_QUESTION + 1), "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert f"question is {MAX_QUESTION + 1} characters; the limit is {MAX_QUESTION}" in err and out == ""
    rc, out, _ = run_cli(capsys, ["ask", "who is bo?".ljust(MAX_QUESTION), "--memory", str(settings.memory)])
    assert rc == 0 and out


def test_a_pipe_named_as_the_export_folder_is_said_to_be_a_pipe(memory, settings, capsys, tmp_path):
    os.mkfifo(tmp_path / "pipe")  # (said to be "a file")
    rc, out, err = run_cli(capsys, ["export-rap", str(tmp_path / "pipe"), "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert err == f"edge-rap: {tmp_path / 'pipe'}: is a pipe, not a folder\n"


@pytest.mark.parametrize("argv", [
    ["ask", "hi", "--image", ""],  # answered as a text question, about no photo
    ["eval", "retrieval", "--dataset", ""],  # the current folder evaluated
    ["eval", "retrieval", "--dataset", "ds", "--distractors", " "],
    ["run", "--source", "0", "--config", ""],  # the settings file not read
    ["run", "--source", "0", "--snapshots", ""],  # no snapshots kept
    ["run", "--source", "0", "--speak-to", ""],
    ["listen", "--wav", ""],  # the microphone listened to instead
    ["listen", "--wav", "q.wav", "--image", ""],
    ["serve", "--tls-cert", "", "--tls-key", "k.pem"],
    ["recognize", "f.jpg", "--detector", ""],  # recognised without the detector, exit 0
    ["run", "--source", "0", "--detector", " "],
    ["listen", "--wav", "q.wav", "--asr", ""],
    ["serve", "--host", ""],  # "serving on  without TLS", then "--host : Name or service not known"
    ["pair", "--host", ""],  # the recorded host shown, exit 0
    ["remember", "bo", "f.jpg", "--box", ""],  # the whole photo remembered, not the region meant
    ["add-views", "bo", "f.jpg", "--box", " "],
    ["events", "--since", ""],  # every event shown, exit 0
    ["events", "--until", ""],
])
def test_an_empty_file_or_folder_option_is_refused_not_taken_as_left_out(tmp_path, capsys, argv):
    # `--image "$PHOTO"` with PHOTO unset went on as if the option had not been given, exit 0
    rc, out, err = run_cli(capsys, [*argv, "--memory", str(tmp_path / "memory")])
    assert_one_line_error(rc, err)
    flag = argv[[a.strip() for a in argv].index("") - 1]
    assert f"{flag} " in err and "is empty (an unset variable?)" in err
    assert ("--detector none" in err) == (flag == "--detector")  # what an empty detector may have meant to say


def test_the_default_home_before_its_first_use_reads_as_empty(tmp_path, settings, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "never-used"))
    photo = scene_file(tmp_path / "photos", 1)
    assert run_cli(capsys, ["concepts"])[:2] == (0, "no concepts remembered yet\n")
    rc, out, _ = run_cli(capsys, ["recognize", str(photo)])
    assert rc == 0 and out.endswith("none of my concepts\n")


def test_an_embedder_other_than_the_memorys_is_one_line(memory, settings, model_cache, tmp_path, capsys, caplog):
    other = tmp_path / "other-model"
    shutil.copytree(model_cache / "efficientnet-lite0-int8", other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "name": "other-model", "space": "other-model"}))
    photo = tmp_path / "photos" / "scene1.png"
    for argv in (["recognize", str(photo)], ["ask", "--image", str(photo)]):
        rc, out, err = run_cli(capsys, [*argv, "--embedder", str(other), "--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
        assert f"reindex --embedder {other}" in err and "efficientnet-lite0-int8" in err
    rc, out, _ = run_cli(capsys, ["recognize", str(photo), "--memory", str(settings.memory)])
    assert rc == 0 and "<bo>" in out  # with its own embedder the memory still answers
    # reindexed into the other embedder too, then a photo remembered with this one: the other's vectors lack
    # it (spaces never mix), and recognising with the other says so instead of missing it silently
    memory_flag = ["--memory", str(settings.memory)]
    assert run_cli(capsys, ["reindex", "--embedder", str(other), *memory_flag])[0] == 0
    assert run_cli(capsys, ["remember", "anya", str(scene_file(tmp_path / "photos", 5)), *memory_flag])[0] == 0
    assert run_cli(capsys, ["recognize", str(photo), *memory_flag])[0] == 0
    caplog.clear()
    rc, out, err = run_cli(capsys, ["recognize", str(photo), "--embedder", str(other), *memory_flag])
    said = [r.getMessage() for r in caplog.records if "remembered with another embedder" in r.getMessage()]
    assert rc == 0 and len(said) == 1 and f"reindex --embedder {other}" in said[0]
    # "has no it vectors, so this recognition cannot see efficientnet-lite0-int8": the model and the pronoun swapped
    assert said[0].startswith("1 photo was remembered with another embedder and has no other-model vectors, so this "
                              "recognition cannot see it: "), said[0]
    assert said[0].endswith(" brings it in"), said[0]  # (was "them" for the one photo)


# --- bad names ------------------------------------------------------------------------------------------

BAD_NAMES = {
    "slash": "a/b",
    "backslash": "a\\b",
    "newline": "bo\nrm -rf",
    "nul": "bo\x00",
    "escape": "\x1b[31mred",
    "tab": "a\tb",
    "bidi-override": "abc\u202edcba",
    "empty": "",
    "spaces": "   ",
    "empty-brackets": "<>",
    "dotdot": "..",
    "dot": ".",
    "angle-inside": "a<b",
    "too-long": "x" * 65,
    "question-mark": "?",  # "what is <José's mug> ?" named <?> too
    "dots": "...",  # nothing left to tell it by: name_key drops dots, dashes and '_'
    "punctuation": "*-_",
}


@pytest.mark.parametrize("kind", list(BAD_NAMES))
def test_bad_name_refused(kind, memory, settings, embedder, tmp_path, capsys):
    name = BAD_NAMES[kind]
    photo = scene_file(tmp_path / "photos", 2)
    with pytest.raises(EdgeRapError) as e:
        memory.remember(name, [photo])
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value) and "\x00" not in str(e.value)
    with pytest.raises(EdgeRapError):
        memory.rename("bo", name)
    rc, out, err = run_cli(capsys, ["remember", name, str(photo), "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert "\x1b" not in err and "\x00" not in err
    rc, out, err = run_cli(capsys, ["rename", "bo", name, "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert_intact(settings, embedder, tmp_path)


def test_longest_allowed_name_and_unicode_name_accepted(memory, tmp_path):
    photo = scene_file(tmp_path / "photos", 2)
    assert memory.remember("x" * 64, [photo]).name == "x" * 64
    assert memory.rename("x" * 64, "Ánya's cat 🐈").name == "Ánya's cat 🐈"
    assert memory.rename("Ánya's cat 🐈", "🐈").name == "🐈"  # an emoji alone is a name
    assert memory.rename("🐈", "42").name == "42"


def test_unknown_concept_is_one_line(memory, settings, embedder, tmp_path, capsys):
    for argv in (["forget", "nobody"], ["rename", "nobody", "x"], ["edit", "nobody", "--description", "x"],
                 ["add-views", "nobody", str(tmp_path / "photos" / "scene1.png")], ["edit", "bo"]):
        rc, _, err = run_cli(capsys, argv + ["--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
    rc, _, err = run_cli(capsys, ["remember", "bo", str(tmp_path / "photos" / "scene1.png"),
                                  "--memory", str(settings.memory)])
    assert_one_line_error(rc, err)
    assert "already exists" in err
    assert_intact(settings, embedder, tmp_path)


def test_bad_box_is_one_line(memory, settings, embedder, tmp_path, capsys):
    photo = scene_file(tmp_path / "photos", 2)
    for box, said in (("1,2,3", "not x0,y0,x1,y1"), ("10,10,5,5", "is empty: x1 must be above x0"),
                      ("a,b,c,d", "not x0,y0,x1,y1"), ("-1,0,10,10", "starts at a negative coordinate"),
                      ("300,300,400,400", "too small, or outside it"), ("100,100,102,102", "too small, or outside it"),
                      ("inf,0,1,1", "finite"), ("nan,0,1,1", "finite"), ("0,0,1e400,10", "finite")):
        rc, _, err = run_cli(capsys,
                             ["remember", "boxed", str(photo), f"--box={box}", "--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
        assert said in err, (box, err)
    assert_intact(settings, embedder, tmp_path)


@pytest.mark.parametrize("text", ["inf,0,1,1", "nan,0,1,1", "0,0,1e400,10", "0,-inf,5,5"])
def test_non_finite_box_is_refused(text):
    with pytest.raises(EdgeRapError, match="finite"):
        Box.parse(text)


# --- a full disk ----------------------------------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _entries(folder: Path) -> list[Path]:
    """Files and folders: a failed write left an empty images/xx/ folder it had made."""
    return sorted(folder.rglob("*"))


def test_disk_full_while_saving_the_photo(memory, settings, embedder, tmp_path, monkeypatch, capsys):
    photo = scene_file(tmp_path / "photos", 2)
    before = _entries(settings.memory / "images")
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _enospc)
        with pytest.raises(EdgeRapError, match="disk is full") as e:
            memory.remember("anya", [photo])
        assert "\n" not in str(e.value)
        rc, _, err = run_cli(capsys, ["remember", "anya", str(photo), "--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
        assert "disk is full" in err
    assert _entries(settings.memory / "images") == before  # no half-written temp file or its new folder left behind
    assert_intact(settings, embedder, tmp_path)


def test_disk_full_while_writing_the_index(memory, settings, embedder, tmp_path, monkeypatch, capsys):
    from usearch.index import Index

    photo = scene_file(tmp_path / "photos", 2)
    space_before = memory.store.space(embedder.space.name)
    with monkeypatch.context() as m:
        m.setattr(Index, "save", _enospc)
        with pytest.raises(EdgeRapError, match="disk is full"):
            memory.remember("anya", [photo])
        with pytest.raises(EdgeRapError, match="disk is full"):
            memory.add_views("bo", [photo])
        rc, _, err = run_cli(capsys, ["remember", "anya", str(photo), "--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
    assert memory.store.space(embedder.space.name) == space_before  # the index row was not switched
    assert memory.store.vectors(embedder.space.name)[0].tolist() == [memory.get("bo").id] * views_per_photo()
    assert_intact(settings, embedder, tmp_path)
    # and the memory still takes writes once there is room again
    assert memory.remember("anya", [photo]).views == 1
    with monkeypatch.context() as m:  # forget, how the user makes room, works where no index can be written again
        m.setattr(Index, "save", _enospc)
        memory.forget("anya")
    assert_intact(settings, embedder, tmp_path)  # searched in the database's vectors until the next write


def test_forget_makes_room_on_a_disk_full_until_the_index_files_go(memory, settings, embedder, tmp_path,
                                                                    monkeypatch):
    # usearch, writing a file itself on a full disk, says only "Failed to serialize into stream": forget took that
    # for an error other than a full disk and never deleted the current index files to make room (exit 2)
    from usearch.index import Index

    memory.remember("anya", [scene_file(tmp_path / "photos", 2)])
    index = settings.memory / "index"
    earlier = set(index.iterdir())
    save, fsync = Index.save, os.fsync

    def full(*args, **kwargs):  # the disk has room again only once an index file of before is gone
        if set(index.iterdir()) >= earlier:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def usearch_save(self, path=None, *args, **kwargs):
        if path is not None and set(index.iterdir()) >= earlier:
            raise RuntimeError("Failed to serialize into stream")
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(Index, "save", usearch_save)
    monkeypatch.setattr(os, "fsync", lambda fd: (full(), fsync(fd)))
    assert memory.forget("anya").name == "anya"
    monkeypatch.undo()
    assert_intact(settings, embedder, tmp_path)


def test_failed_remember_leaves_no_stray_photo(memory, settings, embedder, tmp_path, monkeypatch):
    # "Nothing was changed" must hold for the photo too: a failed remember leaves no file behind.
    from usearch.index import Index

    photo = scene_file(tmp_path / "photos", 2)
    before = _entries(settings.memory / "images")
    with monkeypatch.context() as m:
        m.setattr(Index, "save", _enospc)
        with pytest.raises(EdgeRapError, match="disk is full"):
            memory.remember("anya", [photo])
    assert _entries(settings.memory / "images") == before, "a photo of a concept that was never stored is left on disk"


def test_an_export_the_disk_is_full_for_leaves_no_folder_it_made_and_keeps_one_there_before(memory, settings,
                                                                                            capsys, tmp_path,
                                                                                            monkeypatch):
    # a new export folder was left behind, empty
    (tmp_path / "kept").mkdir()
    monkeypatch.setattr(Path, "write_bytes", _enospc)
    for folder in (tmp_path / "new" / "export", tmp_path / "kept"):
        rc, out, err = run_cli(capsys, ["export-rap", str(folder), "--memory", str(settings.memory)])
        assert_one_line_error(rc, err)
        assert "No space left on device" in err and out == ""
    assert not (tmp_path / "new").exists()
    assert list((tmp_path / "kept").iterdir()) == []


def test_database_full(memory, settings, embedder, tmp_path):
    """SQLite itself runs out of room (max_page_count caps the file, as a full disk would)."""
    pages = memory.store.db.execute("PRAGMA page_count").fetchone()[0]
    memory.store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(EdgeRapError, match="disk is full") as e:
        for i in range(5):  # the first insert may still fit in free pages; some will not
            memory.remember(f"anya{i}", [scene_file(tmp_path / "photos", 10 + i)], "x" * 1500)
    assert "\n" not in str(e.value)
    memory.store.db.execute("PRAGMA max_page_count = 1073741823")
    names = {c.name for c in memory.concepts()}
    assert "bo" in names
    # whatever was committed before the failure is whole: listed, indexed and recognised
    retriever = open_retriever(memory, settings)
    for name in names:
        view = memory.store.views(memory.get(name).id)[0]
        assert retriever.recognize(read_image_file(view.image_path).image).hits[0].concept.name == name
    assert len(retriever.view) == views_per_photo() * len(names)


# --- a read-only memory folder --------------------------------------------------------------------------

RO_SCRIPT = r"""
import contextlib, io, json, sys
from edge_rap import cli
memory, photo, out = sys.argv[1:4]
results = {}
for label, argv in [
    ("remember", ["remember", "anya", photo]),
    ("add-views", ["add-views", "bo", photo]),
    ("edit", ["edit", "bo", "--description", "changed"]),
    ("rename", ["rename", "bo", "bobo"]),
    ("forget", ["forget", "bo"]),
    ("concepts", ["concepts", "--json"]),
    ("recognize", ["recognize", "--json", photo]),
]:
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            rc = cli.main(argv + ["--memory", memory])
        except BaseException as exc:  # a traceback is a failure of the test, recorded as such
            import traceback
            traceback.print_exc(file=e)
            rc = "crashed"
    results[label] = {"rc": rc, "out": o.getvalue(), "err": e.getvalue()}
open(out, "w").write(json.dumps(results))
"""


def _run_read_only(memory_dir: Path, photo: Path, tmp_path: Path) -> dict:
    script = tmp_path / "ro_script.py"
    script.write_text(RO_SCRIPT)
    out = tmp_path / "ro_results.json"
    run_read_only(memory_dir, [sys.executable, str(script), str(memory_dir), str(photo), str(out)], out)
    return json.loads(out.read_text())


def test_read_only_memory_folder(memory, settings, embedder, tmp_path):
    memory.close()
    photo = scene_file(tmp_path / "photos", 2)
    results = _run_read_only(settings.memory, photo, tmp_path)
    for label in ("remember", "add-views", "edit", "rename", "forget"):
        r = results[label]
        assert r["rc"] == 2, (label, r)
        assert r["err"].count("\n") == 1 and "Traceback" not in r["err"], (label, r["err"])
        assert "not writable" in r["err"], (label, r["err"])
    assert_intact(settings, embedder, tmp_path)


def test_read_only_memory_folder_can_still_be_listed_and_searched(memory, settings, embedder, tmp_path):
    # A WAL database in a read-only folder cannot get its -shm file; listing and recognising must still
    # work (a provisioned camera image may mount its memory read-only).
    memory.close()
    photos = tmp_path / "photos"
    results = _run_read_only(settings.memory, scene_file(photos, 1), tmp_path)
    r = results["concepts"]
    assert "Traceback" not in r["err"], r["err"]
    assert r["rc"] == 0, r
    assert [c["name"] for c in json.loads(r["out"])] == ["bo"]
    r = results["recognize"]
    assert r["rc"] == 0, r
    assert [c["name"] for c in json.loads(r["out"])["concepts"]] == ["bo"]


@pytest.mark.parametrize("argv, said", [(["reindex"], "re-embedded 0 reference views\n"), (
    ["reindex", "--json"], '{"views": 0, "faces": 0, "unreadable": [], "unrecognisable": []}\n')])
@pytest.mark.parametrize("empty_folder", [False, True])
def test_reindex_makes_no_memory_of_the_default_home_before_its_first_remember(settings, capsys, argv, said,
                                                                               empty_folder):
    # it made one there (memory.sqlite, an index): only remember and import-rap make a memory; in an empty folder
    # given as --memory (or an empty home) too
    if empty_folder:
        settings.memory.mkdir()
        argv = [*argv, "--memory", str(settings.memory)]
    assert run_cli(capsys, argv) == (0, said, "")
    assert not settings.home.exists() and (not empty_folder or not any(settings.memory.iterdir()))


@pytest.mark.parametrize("argv", [
    ["concepts", "--memory", "LONG"],
    ["export-rap", "LONG"],
    ["import-rap", "LONG"],
    ["eval", "retrieval", "--dataset", "LONG"],
    ["run", "--config", "LONG"],
    ["backup", "LONG"],  # (said as a folder that cannot be searched)
])
def test_a_path_too_long_for_the_file_system_is_one_line(settings, tmp_path, capsys, argv):
    # a name over 255 bytes made Path.exists() raise (Python 3.11): a traceback from every command
    long = str(tmp_path / ("y" * 300))
    rc, out, err = run_cli(capsys, [long if a == "LONG" else a for a in argv])  # (the default home: not made yet)
    assert_one_line_error(rc, err)
    assert err == f"edge-rap: {long}: File name too long\n" and out == ""


def test_a_16_bit_photo_is_made_small(tmp_path):
    # A card's ?size asks for a picture many times smaller than the photo: Pillow's thumbnail first `reduce`s it,
    # which it cannot do in 16-bit greyscale, and the photo was said to be "corrupt or truncated"
    import io

    from PIL import Image

    from edge_rap.perceive.images import thumbnail_jpeg

    Image.fromarray(np.full((800, 1000), 40000, np.uint16)).save(tmp_path / "deep.png")
    shown = Image.open(io.BytesIO(thumbnail_jpeg(tmp_path / "deep.png", 100)))
    assert shown.size == (100, 80)
    assert abs(int(np.asarray(shown.convert("L"))[40, 50]) - round(40000 / 257)) <= 2


def _limited_memory() -> None:
    """A child's address space held to 4 GiB: reading /dev/zero whole ends in a MemoryError, not a swapping host."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("argv", [["import-rap", "{zero}"], ["import-rap", "{fifo}"], ["doctor", "--config", "{zero}"],
                                  ["doctor", "--config", "{fifo}"], ["concepts", "--device", "{zero_toml}"]])
def test_a_device_or_pipe_given_as_a_text_file_is_refused_not_read_for_ever(argv, settings, tmp_path):
    # A RAP database, a settings file and a device profile are read whole: /dev/zero filled the memory (a
    # MemoryError's traceback), a pipe with no writer waited for ever.
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    names = {"zero": "/dev/zero", "fifo": str(tmp_path / "fifo.json"), "zero_toml": str(tmp_path / "zero.toml")}
    env = {**os.environ, "EDGE_RAP_HOME": str(settings.home), "EDGE_RAP_MODELS": str(settings.models)}
    done = subprocess.run([sys.executable, "-m", "edge_rap", *(a.format(**names) for a in argv)], env=env,
                          capture_output=True, text=True, timeout=60, preexec_fn=_limited_memory)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr[-500:]
    assert done.stderr.startswith("edge-rap: ")
    assert "is a device, not" in done.stderr or "is a pipe, not" in done.stderr


def test_a_text_file_is_read_in_what_it_holds_and_one_over_the_limit_unread(tmp_path):
    # read(limit + 1) allocated the whole 64 MiB limit for every settings file of a few bytes read
    import tracemalloc

    from edge_rap.userfiles import read_whole

    (tmp_path / "run.toml").write_text("duration = 5\n")
    tracemalloc.start()
    try:
        assert read_whole(tmp_path / "run.toml", "a settings file") == b"duration = 5\n"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    (tmp_path / "big.json").write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(EdgeRapError, match=r"big.json: over 1 MiB, too large for a RAP database"):
        read_whole(tmp_path / "big.json", "a RAP database", limit=1 << 20)
