"""Build development sets from ../shared/data (never copied into the repo) in the layout `eval retrieval` reads.

group:  one folder per character of the four group-photo sets: 0-reference.jpg from references/, and
        1-groupcrop.jpg cut from the group photo with the hand-annotated box (tools/devsets/).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"group: {build_group(args.data, args.out)} concepts")


if __name__ == "__main__":
    main()
