"""Static int8 quantisation of exported image encoders with onnxruntime's tools, alike on every CPU.

onnxruntime's x86 kernel for uint8 activations x int8 weights on AVX2 without VNNI multiplies adjacent pairs
with VPMADDUBSW, which saturates the pair's sum at 16 bits: 255 * (|w1| + |w2|) must stay <= 32767. With
full-range int8 weights (|w| up to 127) it does not, so one model gave other vectors on an AVX2-only EPYC
(worst cosine to the torch model 0.903) than on a machine with VNNI or AVX-512 (> 0.97), and ARM runs yet
other kernels. Weights quantised to 7 bits ([-64, 64], onnxruntime's `reduce_range`) can never saturate, so
every kernel computes the same exact integer sums; only the float rescaling between layers rounds differently
(vectors agree within 0.999 between x86 and ARM). `saturating_weights` checks a graph for it statically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The largest 16-bit sum of two uint8 x int8 products that cannot saturate.
INT16_MAX = 32767
UINT8_MAX = 255
#: What an int8 manifest records of its quantisation.
QUANTIZATION = {"format": "QOperator", "activations": "uint8",
                "weights": "int8 per channel, 7-bit range (reduce_range): no 16-bit saturation on any CPU"}


@dataclass(frozen=True)
class SaturationRisk:
    """A quantised weight whose worst pair of products with uint8 activations overflows 16 bits."""

    node: str
    channel: int
    worst_pair_sum: int


@dataclass(frozen=True)
class Scheme:
    """How weights are quantised (activations are always uint8); tools/bench_quantize.py measures them."""

    reduce_range: bool = True  # 7-bit weights: no saturation (the shipped scheme)
    float_nodes: tuple[str, ...] = ()  # nodes left in float (e.g. the stem, which sees the raw pixels)

    @property
    def label(self) -> str:
        label = "U8S8 7-bit" if self.reduce_range else "U8S8 full range (old)"
        return label + "".join(f" float {n}" for n in self.float_nodes)


def quantize_image_encoder(fp32: Path, int8: Path, calibration: list[np.ndarray], input_name: str = "image",
                           scheme: Scheme = Scheme()) -> None:
    """Quantise weights per channel and activations (uint8) using calibration batches of one image."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{input_name: x[None]} for x in calibration])

        def get_next(self):
            return next(self._feeds, None)

    prepared = int8.with_suffix(".pre.onnx")
    try:
        try:
            quant_pre_process(str(fp32), str(prepared))
        except Exception:  # symbolic shape inference fails on some transformer graphs; ONNX's own suffices
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8),
            Reader(),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            reduce_range=scheme.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,  # asked for uint8, onnxruntime 1.32 still writes int8 per-channel weights
            nodes_to_exclude=list(scheme.float_nodes),
        )
    finally:
        prepared.unlink(missing_ok=True)


def quantize_text_encoder(fp32: Path, int8: Path) -> None:
    """Text towers are matrix products over token embeddings: dynamic int8 quantisation of their weights,
    7-bit as the image tower's, for the same reason (the activations are dynamic uint8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                     reduce_range=True)


#: Quantised operators with uint8 activations and an int8 weight: (weight input index, output-channel axis).
_WEIGHTED = {"QLinearConv": (3, 0), "ConvInteger": (1, 0), "QLinearMatMul": (3, 1), "MatMulInteger": (1, 1)}


def worst_pair_sums(weights: np.ndarray, axis: int) -> np.ndarray:
    """Per output channel, the largest |w1| + |w2| over two distinct weights that one product sums: whatever
    pairs a kernel forms, 255 times this bounds the pair's 16-bit sum."""
    magnitude = np.abs(np.moveaxis(weights.astype(np.int32), axis, 0).reshape(weights.shape[axis], -1))
    if magnitude.shape[1] < 2:
        return magnitude[:, 0] if magnitude.shape[1] else np.zeros(len(magnitude), np.int32)
    top2 = -np.partition(-magnitude, 1, axis=1)[:, :2]
    return top2.sum(axis=1)


def saturating_weights(model_path: Path) -> list[SaturationRisk]:
    """Every output channel of a quantised model whose int8 weights can saturate a uint8 x int8 pair sum on
    x86 without VNNI: empty for a model that computes the same on every CPU."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    initializers = {t.name: t for t in graph.initializer}
    risks = []
    for node in graph.node:
        if node.op_type not in _WEIGHTED:
            continue
        index, axis = _WEIGHTED[node.op_type]
        if len(node.input) <= index or node.input[index] not in initializers:
            continue
        weights = numpy_helper.to_array(initializers[node.input[index]])
        if weights.dtype != np.int8:
            continue  # uint8 weights are multiplied at 16 bits without pairing (no saturation)
        if weights.ndim == 1:
            axis = 0
        sums = worst_pair_sums(weights, axis)
        for channel in np.flatnonzero(sums * UINT8_MAX > INT16_MAX):
            risks.append(SaturationRisk(node.name, int(channel), int(sums[channel])))
    return risks
