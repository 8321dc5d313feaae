"""Open-vocabulary detection (OWL-ViT / OWLv2): tiny random checkpoints exported through the real optimum path.

Random weights prove the plumbing (export, int8, tokenizer, preprocessing, box mapping), not detection quality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("optimum.exporters.onnx")
torch = pytest.importorskip("torch")

from edge_rap.errors import EdgeRapError  # noqa: E402
from edge_rap.export.detector import export_detector, save_tiny_owl  # noqa: E402
from edge_rap.models.cache import Manifest  # noqa: E402
from edge_rap.perceive.boxes import iou  # noqa: E402
from edge_rap.perceive.owl import OwlOnnxDetector, preprocess  # noqa: E402
from edge_rap.types import Box, Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY = ["dog", "cup", "backpack"]


@pytest.fixture(scope="module", params=["owlvit", "owlv2"])
def exported(request, tmp_path_factory):
    """(kind, checkpoint folder, export) for a tiny random model of each architecture."""
    root = tmp_path_factory.mktemp(request.param)
    checkpoint = save_tiny_owl(root / "checkpoint", request.param, seed=3, image_size=64, patch=16)
    return request.param, checkpoint, export_detector(str(checkpoint), root / "cache", f"tiny-{request.param}")


def _torch_model(kind: str, checkpoint: Path):
    import transformers

    cls = transformers.OwlViTForObjectDetection if kind == "owlvit" else transformers.Owlv2ForObjectDetection
    return cls.from_pretrained(str(checkpoint)).eval()


def _frame(width: int = 150, height: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[20:70, 30:90] = [200, 40, 40]
    return pixels


def test_manifests_describe_a_verified_detector_with_its_tokenizer(exported):
    kind, _, out = exported
    for folder, precision in ((out.fp32, "fp32"), (out.int8, "int8")):
        manifest = Manifest.load(folder)
        manifest.verify()
        raw = json.loads((folder / "manifest.json").read_text())
        assert manifest.role == "detector" and manifest.output["format"] == "owlvit" and raw["precision"] == precision
        assert set(manifest.files) == {"detector", "vocab", "merges"}
        assert manifest.input["size"] == 64 and len(manifest.input["mean"]) == 3 and len(manifest.input["std"]) == 3
        assert manifest.input["resize"] == ("pad" if kind == "owlv2" else "squash")
        assert manifest.text["eos_id"] == max(json.loads((folder / "vocab.json").read_text()).values())
    # int8 really quantised the matrix products
    import onnx

    ops = {n.op_type for n in onnx.load(str(out.int8 / "detector.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}


def test_the_pure_python_tokenizer_matches_transformers(exported):
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    _, checkpoint, out = exported
    mine = OwlOnnxDetector(Manifest.load(out.fp32), "cpu").tokenizer
    texts = ["a photo of a dog", "A Photo of a CUP!", "backpack's strap, 2 bottles", "  many   spaces\tand\nlines ",
             "café crème ünïcode", "snake_case and dashes--here", "a photo of a " + "very long words " * 10, ""]
    ids, mask = mine(texts)
    for reference in (CLIPTokenizer.from_pretrained(str(checkpoint)),
                      CLIPTokenizerFast.from_pretrained(str(checkpoint))):
        expected = reference(texts, padding="max_length", max_length=16, truncation=True, return_tensors="np")
        np.testing.assert_array_equal(ids, expected["input_ids"])
        np.testing.assert_array_equal(mask, expected["attention_mask"])


def test_preprocessing_follows_the_checkpoints_image_processor(exported):
    from transformers import AutoImageProcessor

    kind, checkpoint, out = exported
    manifest = Manifest.load(out.fp32)
    pixels = _frame()
    mine, side = preprocess(pixels, 64, np.asarray(manifest.input["mean"], np.float32),
                            np.asarray(manifest.input["std"], np.float32), manifest.input["resize"])
    theirs = AutoImageProcessor.from_pretrained(str(checkpoint))(images=pixels, return_tensors="np")["pixel_values"]
    assert mine.shape == theirs.shape == (1, 3, 64, 64)
    if kind == "owlvit":  # the same PIL bicubic squash
        np.testing.assert_allclose(mine, theirs, atol=1e-4)
        assert side == 0
    else:  # padded bottom-right to a square; OWLv2's own resize antialiases differently from PIL's
        assert side == 150
        assert np.abs(mine - theirs).mean() < 0.1
        np.testing.assert_allclose(mine[..., 48:, :], theirs[..., 48:, :], atol=1e-4)  # the grey padding


def test_onnx_outputs_match_the_torch_model(exported):
    kind, checkpoint, out = exported
    model = _torch_model(kind, checkpoint)
    detector = OwlOnnxDetector(Manifest.load(out.fp32), "cpu")
    ids, mask = detector.queries(VOCABULARY)
    pixel_values = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    pixel_values=torch.from_numpy(pixel_values))
    feeds = {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask}
    logits, boxes = detector.session.run(feeds)[:2]
    assert logits.shape == (1, 16, len(VOCABULARY)) and boxes.shape == (1, 16, 4)
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(boxes, ref.pred_boxes.numpy(), atol=1e-5)
    int8 = OwlOnnxDetector(Manifest.load(out.int8), "cpu")
    q_logits, q_boxes = int8.session.run(feeds)[:2]
    assert np.corrcoef(q_logits.ravel(), ref.logits.numpy().ravel())[0, 1] > 0.95
    assert np.abs(q_boxes - ref.pred_boxes.numpy()).max() < 0.05


def test_regions_lie_in_the_frame_with_labels_from_the_vocabulary(exported):
    _, _, out = exported
    detector = OwlOnnxDetector(Manifest.load(out.int8), "cpu", min_score=0.0, nms_iou=0.3)
    image = Image(_frame(), "frame")
    regions = detector.detect(image, VOCABULARY)
    assert regions, "a score floor of 0 keeps every patch"
    assert [r.score for r in regions] == sorted((r.score for r in regions), reverse=True)
    for r in regions:
        assert r.label in VOCABULARY and 0.0 <= r.score <= 1.0
        assert 0 <= r.box.x0 < r.box.x1 <= 150 and 0 <= r.box.y0 < r.box.y1 <= 100
    for label in VOCABULARY:
        mine = [r.box for r in regions if r.label == label]
        assert all(iou(a, b) <= 0.3 + 1e-6 for i, a in enumerate(mine) for b in mine[i + 1 :])
    strict = OwlOnnxDetector(Manifest.load(out.int8), "cpu", min_score=max(r.score for r in regions) + 1e-3)
    assert strict.detect(image, VOCABULARY) == []


def test_boxes_map_back_like_the_reference_post_processing(exported):
    """The best region equals transformers' own post-processing of the same outputs, in the frame's pixels."""
    from transformers import AutoProcessor

    kind, checkpoint, out = exported
    detector = OwlOnnxDetector(Manifest.load(out.fp32), "cpu", min_score=0.0, nms_iou=1.0, max_regions=1000)
    pixels = _frame(150, 100)
    logits, boxes, _ = detector.raw(Image(pixels, "frame"), VOCABULARY)
    processor = AutoProcessor.from_pretrained(str(checkpoint)).image_processor

    class Outputs:  # what post_process_object_detection reads
        pass

    outputs = Outputs()
    outputs.logits, outputs.pred_boxes = torch.from_numpy(logits), torch.from_numpy(boxes)
    target = (100, 150) if kind == "owlvit" else (150, 150)  # OWLv2's boxes refer to the padded square
    (reference,) = processor.post_process_object_detection(outputs, threshold=-1.0, target_sizes=[target])
    expected = []
    for score, label, (x0, y0, x1, y1) in zip(reference["scores"].tolist(), reference["labels"].tolist(),
                                              reference["boxes"].tolist()):
        box = Box(max(0, round(x0)), max(0, round(y0)), min(150, round(x1)), min(100, round(y1)))
        if box.width >= 4 and box.height >= 4:  # boxes (nearly) outside the frame are dropped
            expected.append((VOCABULARY[label], score, box))
    regions = detector.detect(Image(pixels, "frame"), VOCABULARY)
    assert len(regions) == len(expected) > 0
    for r in regions:  # every region is one of the reference's boxes: same label and score, box within a pixel
        assert any(r.label == label and abs(r.score - score) < 1e-6 and
                   abs(np.subtract(r.box.as_list(), box.as_list())).max() <= 1 for label, score, box in expected), r
    best = regions[0]
    # a frame decoded at half size reports boxes in the file's pixels
    halved = detector.detect(Image(pixels, "frame", original_size=(300, 200)), VOCABULARY)[0]
    assert abs(np.subtract(halved.box.as_list(), [2 * v for v in best.box.as_list()])).max() <= 2


def test_other_manifests_are_refused(exported, tmp_path):
    _, _, out = exported
    raw = json.loads((out.fp32 / "manifest.json").read_text())
    for change, message in (({"role": "image_embedder"}, "is an image embedder, not a detector"),
                            ({"output": {"format": "yolov8"}}, "is not 'owlvit'")):
        folder = tmp_path / message.replace(" ", "-").replace("'", "")
        folder.mkdir()
        for f in ("detector.onnx", "vocab.json", "merges.txt"):
            (folder / f).symlink_to(out.fp32 / f)
        (folder / "manifest.json").write_text(json.dumps({**raw, **change}))
        with pytest.raises(EdgeRapError, match=message):
            OwlOnnxDetector(Manifest.load(folder), "cpu")


def test_a_checkpoint_that_is_not_owl_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EdgeRapError, match="not an open-vocabulary detector"):
        export_detector(str(tmp_path), tmp_path / "cache")


def test_a_hub_id_without_network_fails_in_one_line(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}  # nothing listens there
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "export_detector.py"), "--model",
                          "google/owlvit-base-patch32",
                          "--out", str(tmp_path / "cache")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("export_detector:")]
    assert len(lines) == 1 and "hub is unreachable" in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_recognize_picks_the_owl_backend_from_the_manifest(exported, settings):
    from edge_rap.app import open_detector
    from edge_rap.perceive.owl import OwlOnnxDetector

    _, _, export = exported
    assert isinstance(open_detector(settings, str(export.int8)), OwlOnnxDetector)
