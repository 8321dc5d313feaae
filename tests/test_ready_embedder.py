"""A ready ONNX embedder that takes uint8 pixels, installed behind the runtime's float front (export/ready.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_rap.errors import EdgeRapError
from photos import photo

onnx = pytest.importorskip("onnx")

#: Channel weights that tell R, G and B apart, so a wrong layout or channel order gives other vectors.
WEIGHTS = np.array([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, -1.0, 3.0], [-1.0, 0.0, 2.0, 1.0]], np.float32)


def pixel_model(path, elem_type=onnx.TensorProto.UINT8, width: int | str | None = 4):
    """N x H x W x 3 pixels -> the mean of each channel over the picture, mixed by WEIGHTS: N x 4. Its own values
    are named as the front would like to name its own (SSCD's distilled file has a "pixels")."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["pixels", "axes"], ["rounded"], keepdims=0),
             helper.make_node("MatMul", ["rounded", "weights"], ["embedding"])]
    graph = helper.make_graph(
        nodes, "pixels", [helper.make_tensor_value_info("image", elem_type, ["batch", "h", "w", 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, None if width is None else ["batch", width])],
        [numpy_helper.from_array(np.array([1, 2], np.int64), "axes"), numpy_helper.from_array(WEIGHTS, "weights")])
    opsets = [helper.make_opsetid("", 18)]  # the IR version of the opset, not the onnx package's newest (14 in
    # onnx 1.23), which the onnxruntime of Python 3.10 (1.23: 11 at most) cannot load
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)),
              str(path))
    return path


@pytest.mark.parametrize("width", [4, "dim"], ids=["width-in-the-file", "width-symbolic"])
def test_the_front_hands_the_file_the_pixels_it_would_have_read(tmp_path, width):
    from edge_rap.export.ready import install_ready_embedder
    from edge_rap.models.cache import Manifest
    from edge_rap.perceive.embed import OnnxImageEmbedder

    folder = install_ready_embedder(pixel_model(tmp_path / "pixels.onnx", width=width),
                                    tmp_path / "cache", "ready", 64, "test")
    manifest = Manifest.load(folder)
    assert manifest.output == {"kind": "embedding", "dim": 4} and manifest.threshold is not None
    images = [photo(n) for n in ("chelsea", "coffee", "rocket")]
    got = OnnxImageEmbedder(manifest, "cpu").embed(images)
    resized = [np.asarray(Image.fromarray(p).resize((64, 64), Image.BILINEAR), np.float64) for p in images]
    expected = np.stack([r.mean(axis=(0, 1)) @ WEIGHTS for r in resized])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(got, expected, atol=1e-5)


def test_a_file_that_takes_float_input_is_refused_in_one_line(tmp_path):
    from edge_rap.export.ready import install_ready_embedder

    path = pixel_model(tmp_path / "float.onnx", onnx.TensorProto.FLOAT)
    with pytest.raises(EdgeRapError, match=r"takes uint8 pixels, N x H x W x 3; input 'image' is float") as e:
        install_ready_embedder(path, tmp_path / "cache", "ready", 64, "test")
    assert "\n" not in str(e.value) and not (tmp_path / "cache" / "ready").exists()


@pytest.mark.parametrize("case", ["not-onnx", "no-output-shape"])
def test_a_file_that_is_no_ready_embedder_is_a_one_line_error(tmp_path, case):
    from edge_rap.export.ready import install_ready_embedder

    path = tmp_path / "model.onnx"
    if case == "not-onnx":
        path.write_bytes(b"not a model")
    else:
        pixel_model(path, width=None)
    with pytest.raises(EdgeRapError, match="not a readable ONNX file|returns one N x D embedding") as e:
        install_ready_embedder(path, tmp_path / "cache", "ready", 64, "test")
    assert "\n" not in str(e.value)
