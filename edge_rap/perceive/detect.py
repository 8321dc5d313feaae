"""Detectors behind one small interface: an image (and a vocabulary) in, `Region`s out.

`YoloOnnxDetector` runs a YOLO-style ONNX export a user brings (YOLO, YOLO-World): either three outputs
(boxes x0,y0,x1,y1 in input pixels, scores, classes) or YOLOv8's single (1, 4 + classes, anchors) tensor of
centre boxes and per-class scores. Frames are letterboxed to the model's square input and boxes mapped back;
non-maximum suppression runs per label (open-vocabulary OWL-ViT/OWLv2 exports, format "owlvit", are run by
perceive/owl.py behind the same interface). Described by a manifest (role "detector") in the model cache:
{"input": {"size": 640}, "output": {"format": "boxes-scores-classes" | "yolov8"}, "labels": [...]}.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.models.cache import Manifest
from edge_rap.perceive.boxes import nms
from edge_rap.models.sessions import open_session
from edge_rap.types import Box, Image, Region

FORMATS = ("boxes-scores-classes", "yolov8")


class Detector(Protocol):
    def detect(self, image: Image, vocabulary: list[str] | None = None) -> list[Region]:
        """Regions of the image, best first; `vocabulary` narrows the labels where the model allows."""
        ...


def letterbox(pixels: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The image scaled to fit size x size, padded grey; returns it (NCHW, 0-1), the scale and the padding."""
    from PIL import Image as PILImage

    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py : py + nh, px : px + nw] = np.asarray(PILImage.fromarray(pixels).resize((nw, nh), PILImage.BILINEAR))
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, scale, (px, py)


def decode_outputs(outputs: list[np.ndarray], fmt: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes x0,y0,x1,y1, scores, class ids) in the model's input pixels, from either output layout."""
    if fmt == "boxes-scores-classes":
        boxes, scores, classes = (np.asarray(o) for o in outputs[:3])
        return (boxes.reshape(-1, 4).astype(np.float32), scores.reshape(-1).astype(np.float32),
                classes.reshape(-1).astype(np.int64))
    if fmt == "yolov8":
        raw = np.asarray(outputs[0])[0]  # (4 + classes, anchors)
        cx, cy, w, h = raw[:4]
        class_scores = raw[4:]
        classes = class_scores.argmax(axis=0)
        scores = class_scores.max(axis=0)
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int64)
    raise EdgeRapError(f"unknown detector output format {fmt!r} (known: {', '.join(FORMATS)})")


class YoloOnnxDetector:
    """A YOLO-style ONNX detector described by a manifest."""

    def __init__(self, manifest: Manifest, provider: str = "auto", min_score: float = 0.25, nms_iou: float = 0.5,
                 threads: int = 0):
        manifest.require_role("detector")
        self.session = open_session(manifest.file_path("detector"), provider, threads)
        self.size = int(manifest.input.get("size", 640))
        self.format = manifest.output.get("format", "boxes-scores-classes")
        if self.format not in FORMATS:
            raise EdgeRapError(f"{manifest.name}: unknown output format {self.format!r} (known: {', '.join(FORMATS)})")
        self.labels: list[str] = list(manifest.labels)
        self.min_score, self.nms_iou = min_score, nms_iou

    def detect(self, image: Image, vocabulary: list[str] | None = None) -> list[Region]:
        x, scale, (px, py) = letterbox(image.pixels, self.size)
        boxes, scores, classes = decode_outputs(self.session.run({self.session.input_names[0]: x}), self.format)
        keep = scores >= self.min_score
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        wanted = None if not vocabulary else {v.lower() for v in vocabulary}
        width, height = image.size
        back = np.asarray([width / image.pixels.shape[1], height / image.pixels.shape[0]] * 2)  # decoded -> file pixels
        regions = []
        for label_id in np.unique(classes):
            label = self.labels[label_id] if 0 <= label_id < len(self.labels) else str(int(label_id))
            if wanted is not None and label.lower() not in wanted:
                continue
            mine = np.flatnonzero(classes == label_id)
            for i in mine[nms(boxes[mine], scores[mine], self.nms_iou)]:
                x0, y0, x1, y1 = ((boxes[i] - [px, py, px, py]) / scale * back).tolist()
                box = Box(int(max(0, x0)), int(max(0, y0)), int(min(width, round(x1))), int(min(height, round(y1))))
                if box.width >= 4 and box.height >= 4:
                    regions.append(Region(box, float(scores[i]), label))
        return sorted(regions, key=lambda r: -r.score)
