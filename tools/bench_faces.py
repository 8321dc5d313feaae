"""Benchmark faces: median latency of detect + embed on a 640x480 frame (MTCNN + FaceNet, or dlib to compare).

    python tools/bench_faces.py [--runs 15] [--min-face 20 40] [--image PATH] [--dlib]
    python tools/bench_faces.py --group-photos ../shared/data/group_photos   # dev figure, by hand only

With --group-photos, a last line compares each person's similarity to their own group face with strangers'
(every reference face against the group faces of the other sets) at several thresholds.

The default frame is scikit-image's astronaut resized to 640x480 (one face). --image takes any photo
(resized to 640x480 too; faces found in it are all embedded). --dlib also times dlib's HOG detector +
5-point alignment + ResNet descriptor (needs dlib-bin and face-recognition-models) on the same frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from timing import median_ms


def frame_640x480(path: str | None) -> np.ndarray:
    from PIL import Image, ImageOps  # photos upright (EXIF), as edge_rap reads them

    if path:
        image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    else:
        from skimage import data

        image = Image.fromarray(data.astronaut())
    return np.asarray(image.resize((640, 480), Image.BILINEAR))



def bench_default(frame: np.ndarray, runs: int, min_faces: list[int]) -> list[dict]:
    from edge_rap.perceive.faces import FacenetEmbedder, MtcnnDetector

    start = time.perf_counter()
    embedder = FacenetEmbedder()
    open_embedder_ms = (time.perf_counter() - start) * 1000
    rows = []
    for min_face in min_faces:
        start = time.perf_counter()
        detector = MtcnnDetector(provider="cpu", min_face=min_face)
        open_ms = (time.perf_counter() - start) * 1000 + open_embedder_ms
        faces = detector.detect(frame)
        detect = median_ms(lambda: detector.detect(frame), runs)
        embed = median_ms(lambda: embedder.embed(frame, faces), runs) if faces else 0.0
        total = median_ms(lambda: embedder.embed(frame, detector.detect(frame)), runs)
        rows.append({"backend": "mtcnn+facenet", "min_face": min_face, "faces": len(faces),
                     "detect_ms": round(detect, 1), "embed_ms": round(embed, 1),
                     "embed_ms_per_face": round(embed / max(len(faces), 1), 1), "total_ms": round(total, 1),
                     "open_ms": round(open_ms)})
    return rows


def bench_dlib(frame: np.ndarray, runs: int) -> list[dict]:
    import importlib.util

    import dlib

    folder = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0] + "/models/"
    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(folder + "shape_predictor_5_face_landmarks.dat")
    net = dlib.face_recognition_model_v1(folder + "dlib_face_recognition_resnet_model_v1.dat")
    rows = []
    for upsample in (0, 1):  # 0: faces from ~80 px; 1: from ~40 px
        faces = detector(frame, upsample)

        def embed(found):
            return [np.asarray(net.compute_face_descriptor(frame, shapes(frame, r))) for r in found]

        detect = median_ms(lambda: detector(frame, upsample), runs)
        emb = median_ms(lambda: embed(faces), runs) if len(faces) else 0.0
        total = median_ms(lambda: embed(detector(frame, upsample)), runs)
        rows.append({"backend": f"dlib hog(upsample={upsample})+resnet", "faces": len(faces),
                     "detect_ms": round(detect, 1), "embed_ms": round(emb, 1),
                     "embed_ms_per_face": round(emb / max(len(faces), 1), 1), "total_ms": round(total, 1)})
    return rows


#: Thresholds at which --group-photos compares people with strangers (FACENET_THRESHOLD among them).
THRESHOLDS = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def strangers_row(genuine: list[float], groups: dict[str, np.ndarray], references: dict[str, np.ndarray]) -> dict:
    """At each threshold: the share of people whose own group face reaches it, and the share of stranger pairs
    (a reference face and a face of another set's group photo, people who never met) that reach it too."""
    stranger = np.concatenate([groups[other] @ refs.T for s, refs in references.items()
                               for other in references if other != s], axis=None)
    kept = np.asarray(genuine)
    return {"set": "people against strangers", "own_face_pairs": len(kept), "stranger_pairs": int(stranger.size),
            "own_face_reaching": {str(t): round(float((kept >= t).mean()), 3) for t in THRESHOLDS},
            "stranger_pairs_reaching": {str(t): round(float((stranger >= t).mean()), 4) for t in THRESHOLDS},
            "stranger_max": round(float(stranger.max()), 3)}


def group_photo_identification(folder: str, boxes_json: str, margin: float) -> list[dict]:
    """Dev figure: each reference photo's face against the faces found in its set's group photo.

    A group face belongs to the annotated person box that holds its centre (the box whose top is nearest above
    it, since person boxes overlap); top-1 is right when the most similar group face belongs to that person.
    `add_views_taken` / `_wrong`: the group photo added to each person (`add-views` without a box) took a face
    as theirs (faces.clearly_theirs, against their reference face and its mirror image), and how many of those
    were someone else's; the others are asked which face.
    """
    from pathlib import Path

    from PIL import Image, ImageOps  # photos upright (EXIF), as edge_rap reads them

    from edge_rap.perceive.faces import clearly_theirs, open_face_models

    models = open_face_models(provider="cpu")
    models.embedder.margin = margin
    photos = json.loads(Path(boxes_json).read_text())["photos"]
    root = Path(folder)
    rows = []
    genuine: list[float] = []
    groups: dict[str, np.ndarray] = {}
    references: dict[str, np.ndarray] = {}
    for photo, spec in photos.items():
        refs = root / "references" / spec["set"]
        if not (root / photo).exists() or not refs.is_dir():
            continue
        group = np.asarray(ImageOps.exif_transpose(Image.open(root / photo)).convert("RGB"))
        people = spec["boxes"]
        faces, vectors = models.faces(group)

        def owner(face) -> str | None:
            cx, cy = (face.box.x0 + face.box.x1) / 2, (face.box.y0 + face.box.y1) / 2
            inside = [(n, b) for n, b in people.items() if b[0] <= cx < b[2] and b[1] <= cy < b[3]]
            return min(inside, key=lambda nb: cy - nb[1][1])[0] if inside else None

        owners = [owner(f) for f in faces]
        groups[spec["set"]] = vectors
        set_references = []
        right = asked = taken = wrong = 0
        no_face = []
        for ref in sorted(refs.glob("*.jpg")):
            if ref.stem not in people:
                continue
            ref_pixels = np.asarray(ImageOps.exif_transpose(Image.open(ref)).convert("RGB"))
            ref_faces, ref_vectors = models.faces(ref_pixels)
            if not ref_faces:
                no_face.append(ref.stem)
                continue
            asked += 1
            set_references.append(ref_vectors[0])
            genuine += [float(v @ ref_vectors[0]) for v, o in zip(vectors, owners) if o == ref.stem][:1]
            if len(faces):
                right += owners[int(np.argmax(vectors @ ref_vectors[0]))] == ref.stem
                registered = models.with_mirror(ref_pixels, ref_faces[0])  # as a person's face is registered
                theirs = clearly_theirs(vectors @ registered.T) if len(faces) > 1 else None
                taken += theirs is not None
                wrong += theirs is not None and owners[theirs] != ref.stem
        rows.append({"set": spec["set"], "people": len(people), "faces_found": len(faces),
                     "people_with_a_face": len({o for o in owners if o}), "top1": right, "asked": asked,
                     "add_views_taken": taken, "add_views_wrong": wrong, "references_without_face": no_face})
        if len(faces):  # a set of people (a face found in its group photo), not of drawings
            references[spec["set"]] = np.asarray(set_references).reshape(-1, vectors.shape[1])
    return rows + [strangers_row(genuine, groups, references)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--min-face", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--image")
    parser.add_argument("--dlib", action="store_true",
                        help="also time dlib's models (dlib-bin, face-recognition-models)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--group-photos", help="dev check: face identification on a group_photos folder")
    parser.add_argument("--boxes", default="tools/devsets/group_photos_boxes.json")
    parser.add_argument("--margin", type=float, default=0.2, help="FaceNet crop margin for --group-photos")
    args = parser.parse_args()
    if args.group_photos:
        for row in group_photo_identification(args.group_photos, args.boxes, args.margin):
            print(json.dumps(row))
        return
    frame = frame_640x480(args.image)
    rows = bench_default(frame, args.runs, args.min_face)
    if args.dlib:
        rows += bench_dlib(frame, args.runs)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    if args.json:
        print(json.dumps({"machine": machine, "frame": "640x480", "runs": args.runs, "rows": rows}, indent=2))
        return
    print(f"{machine}; 640x480 frame; median of {args.runs} runs")
    print(f"{'backend':34} {'min_face':>8} {'faces':>5} {'detect':>8} {'embed':>8} {'/face':>7} {'total':>8}")
    for r in rows:
        print(f"{r['backend']:34} {str(r.get('min_face', '-')):>8} {r['faces']:>5} {r['detect_ms']:>8} "
              f"{r['embed_ms']:>8} {r['embed_ms_per_face']:>7} {r['total_ms']:>8}")


if __name__ == "__main__":
    main()
