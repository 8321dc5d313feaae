"""Image and text embedders behind one small interface: pixels in, L2-normalised float32 vectors out."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge_rap.models.cache import Manifest
from edge_rap.models.sessions import Session, open_session


@dataclass(frozen=True)
class SpaceInfo:
    """Identity of an embedding space: vectors are comparable only within one (same model, same weights)."""

    name: str
    model: str
    fingerprint: str
    dim: int


class ImageEmbedder(Protocol):
    space: SpaceInfo

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """N RGB uint8 images (H x W x 3) -> N x dim L2-normalised float32 vectors."""
        ...


class TextEmbedder(Protocol):
    space: SpaceInfo

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """N strings -> N x dim L2-normalised float32 vectors in the image space."""
        ...


GEM_ROWS = 512  # channels pooled per pass: 512 x 49 cells of float32 are 100 KB, under glibc's mmap threshold


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def preprocess(images: list[np.ndarray], size: int | tuple[int, int], mean: np.ndarray, std: np.ndarray,
               out: np.ndarray | None = None) -> np.ndarray:
    """Resize each image to size x size, or (width, height), keeping the whole picture, and normalise to an
    NCHW float32 batch. Normalising is a 256-entry table per channel (pixels are uint8), looked up by OpenCV
    in one pass: a frame's share of the feature pass was mostly float arithmetic before. `out`: a float32
    array of at least the batch's size to fill (and return a view of) instead of a new one."""
    import cv2
    from PIL import Image as PILImage

    width, height = (size, size) if isinstance(size, int) else size
    table = ((np.arange(256, dtype=np.float32)[:, None] / 255.0 - mean[None, :]) / std[None, :]).astype(np.float32)
    table = table.reshape(256, 1, 3)
    shape = (len(images), 3, height, width)
    batch = np.empty(shape, dtype=np.float32) if out is None else out.reshape(-1)[: int(np.prod(shape))].reshape(shape)
    for i, pixels in enumerate(images):
        picture = PILImage.fromarray(pixels)
        if picture.size != (width, height):
            picture = picture.resize((width, height), PILImage.BILINEAR)
        batch[i] = cv2.LUT(np.asarray(picture), table).transpose(2, 0, 1)
    return batch


def gem_pool(features: np.ndarray, p: float) -> np.ndarray:
    """Generalised-mean pooling of an N x C x H x W feature map: between average (p=1) and max (p->inf).
    A whole-number p (the default 3) is raised by multiplying: five times faster than np.power, and the
    same to float32 rounding. Done GEM_ROWS channels at a time in two small scratch blocks: whole-batch
    temporaries were megabytes of fresh pages on every call (heap.py sends large blocks to mmap)."""
    n, channels = features.shape[:2]
    rows = features.reshape(n * channels, -1)
    pooled = np.empty(len(rows), dtype=np.float32)
    clipped = np.empty((min(GEM_ROWS, len(rows)), rows.shape[1]), dtype=np.float32)
    raised = np.empty_like(clipped)
    whole = float(p).is_integer() and 1 <= p <= 8
    for start in range(0, len(rows), GEM_ROWS):
        part = rows[start : start + GEM_ROWS]
        low, high = clipped[: len(part)], raised[: len(part)]
        np.maximum(part, 1e-6, out=low)
        if whole:
            np.copyto(high, low)
            for _ in range(int(p) - 1):
                high *= low
        else:
            np.power(low, p, out=high)
        pooled[start : start + len(part)] = high.mean(axis=1)
    return np.power(pooled, 1.0 / p).reshape(n, channels)


class OnnxImageEmbedder:
    """An ONNX image encoder described by a manifest: a feature map pooled with GeM, or a ready embedding."""

    def __init__(self, manifest: Manifest, provider: str = "auto", batch: int = 16, threads: int = 0):
        self.manifest = manifest
        self.session: Session = open_session(manifest.file_path("image"), provider, threads)
        spec = manifest.input
        self.size = int(spec["size"])
        self.mean = np.asarray(spec["mean"], dtype=np.float32)
        self.std = np.asarray(spec["std"], dtype=np.float32)
        self.output = manifest.output
        self.batch = batch
        self.space = SpaceInfo(manifest.space, manifest.name, manifest.space_fingerprint(), int(self.output["dim"]))
        self._input_name = self.session.input_names[0]
        self.threshold = manifest.threshold
        self._local = threading.local()

    def _input_buffer(self, images: int, width: int, height: int) -> np.ndarray:
        """This thread's input buffer, reused from call to call: a new batch every call is megabytes of fresh
        pages, and faulting them in cost a fifth of `recognize` (docs/BENCHMARKS.md). Per thread, because the
        daemon, the voice and the server embed at once. Made for a full batch at once and written through, so
        that the resident size does not step up later, the first time a larger batch comes."""
        size = images * 3 * width * height
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or buffer.size < size:
            buffer = self._local.buffer = np.empty(max(size, self.batch * 3 * self.size * self.size), np.float32)
            buffer.fill(0.0)  # a new mapping's pages are only taken when written: take them now
        return buffer

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.space.dim), dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch):
            chunk = images[start : start + self.batch]
            x = preprocess(chunk, self.size, self.mean, self.std, self._input_buffer(len(chunk), self.size, self.size))
            y = self.session.run({self._input_name: x})[0]
            out.append(self._pool(y))
        return normalise(np.concatenate(out))

    def _pool(self, y: np.ndarray) -> np.ndarray:
        if self.output["kind"] == "feature_map":
            return gem_pool(y, self.gem_p)
        return y

    @property
    def gem_p(self) -> float:
        return float(self.output.get("gem_p", 3.0))

    @property
    def has_feature_map(self) -> bool:
        """Whether one pass gives a spatial feature map (regional matching) or only a pooled embedding."""
        return self.output["kind"] == "feature_map"

    def feature_map(self, pixels: np.ndarray, long_side: int, stride: int = 32) -> np.ndarray:
        """One pass over the whole image, aspect kept, the longer side `long_side`: a C x h x w feature map."""
        h, w = pixels.shape[:2]
        scale = long_side / max(h, w)
        size = (max(stride, round(w * scale / stride) * stride), max(stride, round(h * scale / stride) * stride))
        x = preprocess([pixels], size, self.mean, self.std, self._input_buffer(1, *size))
        return self.session.run({self._input_name: x})[0][0]


class OnnxTextEmbedder:
    """The text tower of a CLIP-style model exported to ONNX; tokenised with open_clip's own tokenizer."""

    def __init__(self, manifest: Manifest, provider: str = "auto"):
        self.manifest = manifest
        self.session = open_session(manifest.file_path("text"), provider)
        self.space = SpaceInfo(manifest.space, manifest.name, manifest.space_fingerprint(), int(manifest.output["dim"]))
        self.context_length = int(manifest.text["context_length"])
        self._tokenizer = None

    def _tokenize(self, texts: list[str]) -> np.ndarray:
        if self._tokenizer is None:
            from edge_rap.errors import EdgeRapError

            try:
                import open_clip  # heavy: only text queries need it
            except ImportError:
                raise EdgeRapError("text embedding needs open_clip_torch (pip install 'edge_rap[clip]')") from None
            name = self.manifest.text.get("tokenizer", "clip-bpe")
            if name == "clip-bpe":  # CLIP's own byte-pair vocabulary, bundled with open_clip
                self._tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=self.context_length)
            else:
                self._tokenizer = open_clip.get_tokenizer(name.removeprefix("hf:"))
        return np.asarray(self._tokenizer(texts, context_length=self.context_length), dtype=np.int64)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenize(texts)
        return normalise(self.session.run({self.session.input_names[0]: tokens})[0])
