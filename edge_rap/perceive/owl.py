"""Open-vocabulary detection with an OWL-ViT / OWLv2 ONNX export: category names in, `Region`s out.

The vocabulary (the categories of the remembered concepts) becomes text queries ("a photo of a {category}"),
tokenised by `ClipBpe`, a pure-python CLIP byte-pair tokenizer reading the vocab.json and merges.txt saved
beside the model (no transformers on the device). One ONNX run scores every image patch against every query
and regresses a box per patch (cx, cy, w, h normalised to the square model input); each patch keeps its best
query, patches under the score floor are dropped, non-maximum suppression runs per label, and boxes are mapped
back to the frame's pixels. Described by a manifest (role "detector", output format "owlvit") written by
`edge_rap.export.detector`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.models.cache import Manifest
from edge_rap.perceive.boxes import nms
from edge_rap.models.sessions import open_session
from edge_rap.types import Box, Image, Region

FORMAT = "owlvit"
#: CLIP's pre-tokenisation: contractions, runs of letters, single digits, runs of other non-space characters
#: (`regex`'s \p{L} / \p{N}, written with the standard library's classes).
_WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)


@lru_cache(maxsize=1)
def byte_chars() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


class ClipBpe:
    """CLIP's byte-level BPE (the fast tokenizer's behaviour: NFC, whitespace collapsed, lower case)."""

    def __init__(self, vocab: dict[str, int], merges: list[str], context_length: int, bos_id: int, eos_id: int,
                 pad_id: int):
        self.vocab = vocab
        self.ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.context_length, self.bos_id, self.eos_id, self.pad_id = context_length, bos_id, eos_id, pad_id
        self._cache: dict[str, list[int]] = {}
        # The special tokens (start, end and pad: OWL's pad is "!") are matched in the text before anything else,
        # as transformers does: a "!" in a query becomes the pad token.
        specials = sorted({t for t, i in vocab.items() if i in (bos_id, eos_id, pad_id)}, key=len, reverse=True)
        self._specials = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None

    @classmethod
    def load(cls, vocab_path: Path, merges_path: Path, context_length: int, bos_id: int,
             eos_id: int, pad_id: int) -> "ClipBpe":
        try:
            vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
            merges = [ln for ln in merges_path.read_text(encoding="utf-8").splitlines()
                      if ln and not ln.startswith("#version")]
        except (OSError, ValueError) as e:
            raise EdgeRapError(f"{vocab_path.parent}: unreadable tokenizer files ({e})") from None
        return cls(vocab, merges, context_length, bos_id, eos_id, pad_id)

    def _bpe(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        symbols = [byte_chars()[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        while len(symbols) > 1:
            ranked = [(self.ranks.get(pair, len(self.ranks)), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
            rank, _ = min(ranked)
            if rank == len(self.ranks):
                break
            first, second = next(pair for pair in zip(symbols, symbols[1:]) if self.ranks.get(pair) == rank)
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        unk = self.eos_id
        ids = [self.vocab.get(s, unk) for s in symbols]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without the start and end tokens."""
        text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).lower()
        ids: list[int] = []
        for i, part in enumerate(self._specials.split(text) if self._specials else [text]):
            if i % 2:  # a special token (the split keeps them at odd positions)
                ids.append(self.vocab[part])
            else:
                for word in _WORDS.findall(part):
                    ids.extend(self._bpe(word))
        return ids

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), each (len(texts), context_length) int64: start, tokens (truncated), end,
        pads."""
        ids = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, text in enumerate(texts):
            tokens = [self.bos_id, *self.encode(text)[: self.context_length - 2], self.eos_id]
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        return ids, mask


def preprocess(pixels: np.ndarray, size: int, mean: np.ndarray, std: np.ndarray, mode: str) -> tuple[np.ndarray, float]:
    """The frame as the model's (1, 3, size, size) input, and the side in pixels that normalised boxes refer to.

    "squash": resized to the square (bicubic, as OWL-ViT's processor does): boxes refer to (width, height) each,
    returned as side 0. "pad": padded bottom and right to a grey square first (OWLv2): boxes refer to its side.
    """
    from PIL import Image as PILImage

    h, w = pixels.shape[:2]
    if mode == "squash":
        x = np.asarray(PILImage.fromarray(pixels).resize((size, size), PILImage.BICUBIC), dtype=np.float32) / 255.0
        side = 0.0
    elif mode == "pad":
        side = float(max(h, w))
        nw, nh = max(1, round(w * size / side)), max(1, round(h * size / side))
        x = np.full((size, size, 3), 0.5, dtype=np.float32)
        resized = PILImage.fromarray(pixels).resize((nw, nh), PILImage.BILINEAR)
        x[:nh, :nw] = np.asarray(resized, dtype=np.float32) / 255.0
    else:
        raise EdgeRapError(f"unknown detector input resize {mode!r} (known: squash, pad)")
    x = (x - mean) / std
    return x.transpose(2, 0, 1)[None].astype(np.float32), side


def decode(logits: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patch: best query's score (sigmoid), its index, and the box as x0, y0, x1, y1 normalised."""
    logits, boxes = np.asarray(logits)[0], np.asarray(boxes)[0]  # (patches, queries), (patches, 4)
    labels = logits.argmax(axis=-1)
    scores = 0.5 * (1.0 + np.tanh(0.5 * logits.max(axis=-1).astype(np.float64)))  # sigmoid, no overflow
    cx, cy, bw, bh = boxes.T
    corners = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return corners.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64)


class OwlOnnxDetector:
    """An OWL-ViT / OWLv2 ONNX export (optimum, task zero-shot-object-detection) described by a manifest."""

    def __init__(self, manifest: Manifest, provider: str = "auto", min_score: float = 0.1, nms_iou: float = 0.3,
                 max_regions: int = 50, threads: int = 0):
        manifest.require_role("detector")
        if manifest.output.get("format") != FORMAT:
            raise EdgeRapError(f"model {manifest.name}: output format {manifest.output.get('format')!r} is not "
                               f"{FORMAT!r}")
        text = manifest.text
        self.tokenizer = ClipBpe.load(manifest.file_path("vocab"), manifest.file_path("merges"),
                                      int(text.get("context_length", 16)), int(text["bos_id"]), int(text["eos_id"]),
                                      int(text.get("pad_id", 0)))
        self.template = str(text.get("template", "a photo of a {}"))
        self.session = open_session(manifest.file_path("detector"), provider, threads)
        self.size = int(manifest.input["size"])
        self.mean = np.asarray(manifest.input.get("mean", [0.48145466, 0.4578275, 0.40821073]), np.float32)
        self.std = np.asarray(manifest.input.get("std", [0.26862954, 0.26130258, 0.27577711]), np.float32)
        self.resize = manifest.input.get("resize", "squash")
        self.default_vocabulary = list(manifest.labels) or ["object"]
        self.min_score, self.nms_iou, self.max_regions = min_score, nms_iou, max_regions
        self._queries: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}

    def queries(self, vocabulary: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenised text queries of a vocabulary (cached: the vocabulary changes only when concepts do)."""
        key = tuple(vocabulary)
        if key not in self._queries:
            self._queries = {key: self.tokenizer([self.template.format(v) for v in vocabulary])}
        return self._queries[key]

    def raw(self, image: Image, vocabulary: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """The model's logits (1, patches, queries) and boxes (1, patches, 4) for the frame, and the padded side."""
        x, side = preprocess(image.pixels, self.size, self.mean, self.std, self.resize)
        ids, mask = self.queries(vocabulary)
        feeds = {"pixel_values": x, "input_ids": ids, "attention_mask": mask}
        logits, boxes = self.session.run({k: v for k, v in feeds.items() if k in self.session.input_names})[:2]
        return logits, boxes, side

    def detect(self, image: Image, vocabulary: list[str] | None = None) -> list[Region]:
        vocabulary = list(dict.fromkeys(v.strip() for v in (vocabulary or self.default_vocabulary) if v.strip()))
        if not vocabulary:
            vocabulary = self.default_vocabulary
        logits, raw_boxes, side = self.raw(image, vocabulary)
        boxes, scores, labels = decode(logits, raw_boxes)
        keep = scores >= self.min_score
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        width, height = image.size
        h, w = image.pixels.shape[:2]
        # normalised -> decoded pixels (the padded square, or width/height each) -> the file's pixels
        scale = np.asarray([side, side, side, side] if side else [w, h, w, h], np.float32)
        boxes = boxes * scale * np.asarray([width / w, height / h] * 2, np.float32)
        regions = []
        for label in np.unique(labels):
            mine = np.flatnonzero(labels == label)
            for i in mine[nms(boxes[mine], scores[mine], self.nms_iou)]:
                x0, y0, x1, y1 = boxes[i].tolist()
                box = Box(int(max(0, round(x0))), int(max(0, round(y0))), int(min(width, round(x1))),
                          int(min(height, round(y1))))
                if box.width >= 4 and box.height >= 4:
                    regions.append(Region(box, float(scores[i]), vocabulary[label]))
        return sorted(regions, key=lambda r: -r.score)[: self.max_regions]
