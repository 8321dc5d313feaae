"""Build development sets from ../shared/data (never copied into the repo) in the layout `eval retrieval` reads.

group:  one folder per character of the four group-photo sets: 0-reference.jpg from references/, and
        1-groupcrop.jpg cut from the group photo with the hand-annotated box (tools/devsets/).
myvlm-synth: the 29 MyVLM concepts whose reference photo exists; queries are seeded synthetic views of
        that photo (rotated crops, pasted small onto another scene, blurred and recompressed, relit). They
        test robustness to scale, background and capture quality, not to a new viewpoint: say so with
        any number measured on them.
Usage: python tools/make_devsets.py --data ../shared/data --out /tmp/devsets
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent


def build_group(data: Path, out: Path) -> int:
    boxes = json.loads((HERE / "devsets" / "group_photos_boxes.json").read_text())
    count = 0
    for photo, spec in boxes["photos"].items():
        group = Image.open(data / "group_photos" / photo).convert("RGB")
        for name, box in spec["boxes"].items():
            folder = out / "group" / f"{spec['set']}-{name.replace(' ', '_')}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data / "group_photos" / "references" / spec["set"] / f"{name}.jpg", folder / "0-reference.jpg")
            group.crop(tuple(box)).save(folder / "1-groupcrop.jpg", quality=95)
            count += 1
    return count


def _synthetic_queries(photo: Image.Image, backgrounds: list[Image.Image], rng) -> list[Image.Image]:
    from PIL import ImageEnhance, ImageFilter

    w, h = photo.size
    out = []
    # 1: rotated, off-centre crop, relit
    angle = float(rng.uniform(-20, 20))
    rotated = photo.rotate(angle, resample=Image.BILINEAR, expand=False)
    f = float(rng.uniform(0.6, 0.85))
    x0, y0 = int(rng.uniform(0, w * (1 - f))), int(rng.uniform(0, h * (1 - f)))
    crop = rotated.crop((x0, y0, x0 + int(w * f), y0 + int(h * f)))
    out.append(ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.6, 1.3))))
    # 2 and 3: pasted at 35-65% of the width onto another scene
    for _ in range(2):
        bg = backgrounds[int(rng.integers(len(backgrounds)))].resize((640, 480))
        scale = float(rng.uniform(0.35, 0.65)) * 640 / w
        small = photo.resize((max(8, int(w * scale)), max(8, int(h * scale))))
        if small.height > 470:
            small = small.resize((int(small.width * 470 / small.height), 470))
        px = int(rng.uniform(0, 640 - small.width))
        py = int(rng.uniform(0, 480 - small.height))
        bg.paste(small, (px, py))
        out.append(bg)
    # 4: mirrored, low resolution, blurred and heavily recompressed
    low = photo.transpose(Image.FLIP_LEFT_RIGHT).resize((max(8, w // 4), max(8, h // 4))).filter(ImageFilter.GaussianBlur(1))
    out.append(ImageEnhance.Color(low).enhance(float(rng.uniform(0.5, 1.5))))
    return out


def build_myvlm_synth(data: Path, out: Path) -> int:
    import io

    import numpy as np

    db = json.loads((data / "rap_db_myvlm" / "database.json").read_text())
    rng = np.random.default_rng(1234)
    entries = []
    for key, value in db["concept_dict"].items():
        path = data / "rap_db_myvlm" / value["image"]
        if path.exists():
            entries.append((value["name"], path))
    photos = {name: Image.open(path).convert("RGB") for name, path in entries}
    group_bg = [Image.open(p).convert("RGB") for p in sorted((data / "group_photos").glob("group_photo_*.jpg"))]
    for name, path in entries:
        folder = out / "myvlm-synth" / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / "0-reference.jpg")
        for k, img in enumerate(_synthetic_queries(photos[name], group_bg, rng), start=1):
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=int(rng.integers(35, 90)))
            (folder / f"{k}-synthetic.jpg").write_bytes(buf.getvalue())
    return len(entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"group: {build_group(args.data, args.out)} concepts")
    print(f"myvlm-synth: {build_myvlm_synth(args.data, args.out)} concepts")


if __name__ == "__main__":
    main()
