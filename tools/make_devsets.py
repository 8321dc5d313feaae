"""Build development sets from ../shared/data (never copied into the repo) in the layout `eval retrieval` reads.

group:  one folder per character of the four group-photo sets: 0-reference.jpg from references/, and
        1-groupcrop.jpg cut from the group photo with the hand-annotated box (tools/devsets/).
myvlm-synth: the 29 MyVLM concepts whose reference photo exists; queries are seeded synthetic views of
        that photo (rotated crops, pasted small onto another scene, blurred and recompressed, relit). They
        test robustness to scale, background and capture quality, not to a new viewpoint: say so with
        any number measured on them.
myvlm-photos: the same concepts, each query a whole photo of the concept as a camera might take it
        (rotated crop, low resolution, seen from the side, closer up), never a small part of a larger
        picture: for `eval localize`, whose truth box is the whole pasted photo. Same caveat: one photo's
        views, not new viewpoints.
myvlm-photos-sideways: myvlm-photos with each reference stored as a phone stores a portrait, turned a
        quarter and tagged EXIF orientation 6 (lossless PNG), the queries upright: reading photos upright
        must give the same figures as myvlm-photos.
Usage: python tools/make_devsets.py --data ../shared/data --out /tmp/devsets
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image, ImageOps  # photos upright (EXIF), as edge_rap reads them

HERE = Path(__file__).resolve().parent


def build_group(data: Path, out: Path) -> int:
    boxes = json.loads((HERE / "devsets" / "group_photos_boxes.json").read_text())
    count = 0
    for photo, spec in boxes["photos"].items():
        group = ImageOps.exif_transpose(Image.open(data / "group_photos" / photo)).convert("RGB")
        for name, box in spec["boxes"].items():
            folder = out / "group" / f"{spec['set']}-{name.replace(' ', '_')}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data / "group_photos" / "references" / spec["set"] / f"{name}.jpg",
                            folder / "0-reference.jpg")
            group.crop(tuple(box)).save(folder / "1-groupcrop.jpg", quality=95)
            count += 1
    return count


def _rotated_crop(photo: Image.Image, rng) -> Image.Image:
    """Rotated by up to 20 degrees, an off-centre crop of 60-85 %, relit."""
    from PIL import ImageEnhance

    w, h = photo.size
    angle = float(rng.uniform(-20, 20))
    rotated = photo.rotate(angle, resample=Image.BILINEAR, expand=False)
    f = float(rng.uniform(0.6, 0.85))
    x0, y0 = int(rng.uniform(0, w * (1 - f))), int(rng.uniform(0, h * (1 - f)))
    crop = rotated.crop((x0, y0, x0 + int(w * f), y0 + int(h * f)))
    return ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.6, 1.3)))


def _pasted_on_scene(photo: Image.Image, backgrounds: list[Image.Image], rng) -> Image.Image:
    """The photo at 35-65 % of the width on another scene: the concept is only part of the picture."""
    w, h = photo.size
    bg = backgrounds[int(rng.integers(len(backgrounds)))].resize((640, 480))
    scale = float(rng.uniform(0.35, 0.65)) * 640 / w
    small = photo.resize((max(8, int(w * scale)), max(8, int(h * scale))))
    if small.height > 470:
        small = small.resize((int(small.width * 470 / small.height), 470))
    px = int(rng.uniform(0, 640 - small.width))
    py = int(rng.uniform(0, 480 - small.height))
    bg.paste(small, (px, py))
    return bg


def _low_resolution(photo: Image.Image, rng) -> Image.Image:
    """Mirrored, a quarter of the resolution, blurred, colour changed."""
    from PIL import ImageEnhance, ImageFilter

    w, h = photo.size
    low = (photo.transpose(Image.FLIP_LEFT_RIGHT).resize((max(8, w // 4), max(8, h // 4)))
           .filter(ImageFilter.GaussianBlur(1)))
    return ImageEnhance.Color(low).enhance(float(rng.uniform(0.5, 1.5)))


def _oblique(photo: Image.Image, rng) -> Image.Image:
    """Seen from the side: one edge pulled in by 10-25 % (a perspective warp), then contrast changed."""
    from PIL import ImageEnhance

    w, h = photo.size
    pull = float(rng.uniform(0.1, 0.25))
    if rng.integers(2):  # left edge far away
        quad = (0, -h * pull, 0, h * (1 + pull), w, h, w, 0)
    else:
        quad = (0, 0, 0, h, w, h * (1 + pull), w, -h * pull)
    warped = photo.transform((w, h), Image.QUAD, tuple(float(v) for v in quad), resample=Image.BILINEAR)
    warped = warped.crop((0, int(h * pull), w, int(h * (1 - pull))))  # without the empty corners
    return ImageEnhance.Contrast(warped).enhance(float(rng.uniform(0.6, 1.4)))


def _closer(photo: Image.Image, rng) -> Image.Image:
    """Closer up: a crop of 55-75 % around a point near the centre, slightly rotated, colder or warmer."""
    from PIL import ImageEnhance

    w, h = photo.size
    f = float(rng.uniform(0.55, 0.75))
    cx, cy = w * float(rng.uniform(0.4, 0.6)), h * float(rng.uniform(0.4, 0.6))
    box = (max(0, int(cx - w * f / 2)), max(0, int(cy - h * f / 2)),
           min(w, int(cx + w * f / 2)), min(h, int(cy + h * f / 2)))
    closer = photo.rotate(float(rng.uniform(-8, 8)), resample=Image.BILINEAR).crop(box)
    return ImageEnhance.Color(closer).enhance(float(rng.uniform(0.6, 1.4)))


def _synthetic_queries(photo: Image.Image, backgrounds: list[Image.Image], rng) -> list[Image.Image]:
    return [_rotated_crop(photo, rng), _pasted_on_scene(photo, backgrounds, rng),
            _pasted_on_scene(photo, backgrounds, rng), _low_resolution(photo, rng)]


def _photo_views(photo: Image.Image, rng) -> list[Image.Image]:
    return [_rotated_crop(photo, rng), _low_resolution(photo, rng), _oblique(photo, rng), _closer(photo, rng)]


def _myvlm_photos(data: Path) -> list[tuple[str, Path]]:
    db = json.loads((data / "rap_db_myvlm" / "database.json").read_text())
    entries = [(v["name"], data / "rap_db_myvlm" / v["image"]) for v in db["concept_dict"].values()]
    return [(name, path) for name, path in entries if path.exists()]


def _write_views(out: Path, name: str, reference: Path, views: list[Image.Image], suffix: str, rng) -> None:
    import io

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reference, folder / "0-reference.jpg")
    for k, img in enumerate(views, start=1):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(35, 90)))
        (folder / f"{k}-{suffix}.jpg").write_bytes(buf.getvalue())


def build_myvlm_synth(data: Path, out: Path) -> int:
    import numpy as np

    rng = np.random.default_rng(1234)
    entries = _myvlm_photos(data)
    photos = {name: ImageOps.exif_transpose(Image.open(path)).convert("RGB") for name, path in entries}
    group_bg = [ImageOps.exif_transpose(Image.open(p)).convert("RGB")
                for p in sorted((data / "group_photos").glob("group_photo_*.jpg"))]
    for name, path in entries:
        _write_views(out / "myvlm-synth", name, path, _synthetic_queries(photos[name], group_bg, rng), "synthetic", rng)
    return len(entries)


def build_myvlm_photos(data: Path, out: Path) -> int:
    import numpy as np

    rng = np.random.default_rng(4321)
    entries = _myvlm_photos(data)
    for name, path in entries:
        photo = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        _write_views(out / "myvlm-photos", name, path, _photo_views(photo, rng), "view", rng)
    return len(entries)


def build_sideways(out: Path) -> int:
    """myvlm-photos again, each concept's reference stored turned with an orientation tag, as phones do."""
    source, target = out / "myvlm-photos", out / "myvlm-photos-sideways"
    concepts = sorted(p for p in source.iterdir() if p.is_dir())
    for folder in concepts:
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        files = sorted(folder.iterdir())
        exif = Image.Exif()
        exif[0x0112] = 6  # "turn a quarter clockwise to view": stored turned a quarter anticlockwise
        upright = ImageOps.exif_transpose(Image.open(files[0])).convert("RGB")
        upright.transpose(Image.Transpose.ROTATE_90).save(target / folder.name / "0-reference.png", exif=exif)
        for query in files[1:]:
            shutil.copyfile(query, target / folder.name / query.name)
    return len(concepts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"group: {build_group(args.data, args.out)} concepts")
    print(f"myvlm-synth: {build_myvlm_synth(args.data, args.out)} concepts")
    print(f"myvlm-photos: {build_myvlm_photos(args.data, args.out)} concepts")
    print(f"myvlm-photos-sideways: {build_sideways(args.out)} concepts")


if __name__ == "__main__":
    main()
