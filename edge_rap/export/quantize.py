"""Static int8 quantisation of exported image encoders with onnxruntime's tools, alike on every CPU.

onnxruntime's x86 kernel for uint8 activations x int8 weights on AVX2 without VNNI multiplies adjacent pairs
with VPMADDUBSW, which saturates the pair's sum at 16 bits: 255 * (|w1| + |w2|) must stay <= 32767. With
full-range int8 weights (|w| up to 127) it does not, so one model gave other vectors on an AVX2-only EPYC
(worst cosine to the torch model 0.903) than on a machine with VNNI or AVX-512 (> 0.97), and ARM runs yet
other kernels. Weights quantised to 7 bits ([-64, 64], onnxruntime's `reduce_range`) can never saturate, so
every kernel computes the same exact integer sums; only the float rescaling between layers rounds differently
(vectors agree within 0.999 between x86 and ARM). `saturating_weights` checks a graph for it statically.

7 bits is more than the bound needs: only the two largest magnitudes of a channel can meet in one pair, so
`pair_bounded` scales each output channel to |w1| + |w2| <= 128 instead (a channel with one dominant weight
keeps nearly 8 bits). A layer named in `uint8_nodes` gets 8-bit uint8 weights: uint8 x uint8 products are
summed at 32 bits by every kernel (no pairing), exact however large; onnxruntime has fast kernels for them only
where there is little to multiply (the 3-channel stem), so only there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The largest 16-bit sum of two uint8 x int8 products that cannot saturate.
INT16_MAX = 32767
UINT8_MAX = 255


@dataclass(frozen=True)
class SaturationRisk:
    """A quantised weight whose worst pair of products with uint8 activations overflows 16 bits."""

    node: str
    channel: int
    worst_pair_sum: int


@dataclass(frozen=True)
class Scheme:
    """How weights are quantised (activations are always uint8); tools/bench_quantize.py measures them."""

    reduce_range: bool = True  # 7-bit weights: no saturation
    float_nodes: tuple[str, ...] = ()  # nodes left in float (e.g. the stem, which sees the raw pixels)
    pair_bounded: bool = False  # per channel |w1| + |w2| <= 128 (overrides reduce_range): no saturation
    uint8_nodes: tuple[str, ...] = ()  # nodes whose weights are 8-bit uint8 (exact on every kernel)
    coarse_ranges: bool = False  # activation ranges to RANGE_BITS significant bits: the same file on every CPU

    @property
    def label(self) -> str:
        label = ("U8S8 pair-bounded" if self.pair_bounded else "U8S8 7-bit" if self.reduce_range
                 else "U8S8 full range (old)")
        return (label + "".join(f" float {n}" for n in self.float_nodes)
                + "".join(f" uint8 {n}" for n in self.uint8_nodes))

    def record(self) -> dict:
        """What an int8 manifest records of its quantisation."""
        if self.pair_bounded:
            weights = "int8 per channel, scaled so a channel's two largest |w| sum to <= 128 (pair-bounded)"
        elif self.reduce_range:
            weights = "int8 per channel, 7-bit range (reduce_range)"
        else:
            weights = "int8 per channel, full range: pair sums can saturate on AVX2 without VNNI"
        weights += "".join(f"; {n} uint8 8-bit" for n in self.uint8_nodes)
        weights += "".join(f"; {n} float" for n in self.float_nodes)
        if self.pair_bounded or self.reduce_range:
            weights += ": no 16-bit saturation on any CPU"
        activations = "uint8" + (f", ranges to {RANGE_BITS} significant bits: the same file on every CPU"
                                 if self.coarse_ranges else "")
        return {"format": "QOperator", "activations": activations, "weights": weights}


def quantize_image_encoder(fp32: Path, int8: Path, calibration: list[np.ndarray], input_name: str = "image",
                           scheme: Scheme = Scheme()) -> None:
    """Quantise weights per channel and activations (uint8) using calibration batches of one image."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, images: list[np.ndarray]) -> None:
            self._feeds = iter([{input_name: x[None]} for x in images])

        def get_next(self):
            return next(self._feeds, None)

    prepared = int8.with_suffix(".pre.onnx")
    try:
        try:
            quant_pre_process(str(fp32), str(prepared))
        except Exception:  # symbolic shape inference fails on some transformer graphs; ONNX's own suffices
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        overrides = weight_ranges(prepared, scheme)
        if scheme.coarse_ranges:
            overrides |= activation_ranges(prepared, Reader(calibration))
        quantize_static(
            str(prepared),
            str(int8),
            Reader(calibration),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            reduce_range=scheme.reduce_range and not scheme.pair_bounded,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,  # asked for uint8, onnxruntime 1.32 still writes int8 per-channel weights
            nodes_to_exclude=list(scheme.float_nodes),
            extra_options={"TensorQuantOverrides": overrides} if overrides else {},
        )
    finally:
        prepared.unlink(missing_ok=True)


#: Significant bits an activation range keeps (`coarse`): a step of 1/16 to 1/32 of the value, against float
#: noise in the last bits of a 24-bit mantissa.
RANGE_BITS = 4


def coarse(value: float, up: bool) -> float:
    """`value` rounded away from the range's inside to RANGE_BITS significant bits (0 stays 0)."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    step = 2.0 ** (math.floor(math.log2(abs(value))) - RANGE_BITS)
    return float((math.ceil if up else math.floor)(value / step) * step)


def activation_ranges(model_path: Path, reader) -> dict[str, list[dict]]:
    """MinMax ranges of every activation over the calibration images, each widened to RANGE_BITS significant
    bits, as TensorQuantOverrides. The fp32 sums that calibration reads differ in their last bits from CPU to
    CPU (AVX2 and AVX-512 block their products differently); exact ranges carried that noise into the scales,
    zero points and the calibrated threshold (a change of 1e-5 in the calibration images moved the threshold
    by 0.008), so an export made the model it was tested with only on one kind of CPU. Coarse ranges make the same file
    on every CPU, as the integer kernels already compute the same sums."""
    import tempfile
    from collections import Counter

    import onnx
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    from edge_rap.scratch import process_folder

    with tempfile.TemporaryDirectory(prefix="calibrate-", dir=process_folder()) as tmp:
        calibrator = create_calibrator(model_path, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
    bounds = {name: data.range_value for name, data in ranges.items()}
    graph = onnx.load(str(model_path)).graph
    readers = Counter(name for node in graph.node for name in node.input)
    for node in graph.node:  # as onnxruntime does: a Clip or Relu's input takes its output's range (it fuses them)
        if node.op_type in ("Clip", "Relu") and readers[node.input[0]] == 1 and node.output[0] in bounds:
            bounds[node.input[0]] = bounds[node.output[0]]
    overrides = {}
    for name, (low, high) in bounds.items():
        low, high = float(np.asarray(low).reshape(-1)[0]), float(np.asarray(high).reshape(-1)[0])
        overrides[name] = [{"rmin": np.float32(coarse(min(low, 0.0), up=False)),
                            "rmax": np.float32(coarse(max(high, 0.0), up=True))}]
    return overrides


#: A channel's range is at least this share of its layer's widest: channels whose weights are all but zero (a
#: folded batch norm's dead channels) would otherwise get scales so small that their bias overflows int32.
_MIN_RANGE_SHARE = 1e-3


def weight_ranges(model_path: Path, scheme: Scheme) -> dict[str, list[dict]]:
    """onnxruntime's per-channel TensorQuantOverrides for the convolution weights that `scheme` quantises in its
    own way: symmetric ranges of |w1| + |w2| (then int8's 127 steps put at most 128 on any pair), and uint8 for
    `uint8_nodes`. Empty for plain 7-bit or full-range schemes."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType

    if not scheme.pair_bounded and not scheme.uint8_nodes:
        return {}
    graph = onnx.load(str(model_path)).graph
    initializers = {t.name: t for t in graph.initializer}
    overrides = {}
    for node in graph.node:
        if node.op_type != "Conv" or node.name in scheme.float_nodes or node.input[1] not in initializers:
            continue
        weights = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float64)
        magnitude = np.abs(weights.reshape(len(weights), -1))
        if node.name in scheme.uint8_nodes:
            ranges = magnitude.max(axis=1)
        elif scheme.pair_bounded:
            ranges = worst_pair_sums(magnitude, 0)
        else:
            continue
        ranges = np.maximum(ranges, _MIN_RANGE_SHARE * ranges.max())
        if node.name in scheme.uint8_nodes:
            overrides[node.input[1]] = [{"axis": 0, "quant_type": QuantType.QUInt8, **uint8_symmetric(r)}
                                        for r in ranges]
        else:
            overrides[node.input[1]] = [{"axis": 0, "rmin": -float(r), "rmax": float(r)} for r in ranges]
    return overrides


def uint8_symmetric(r: float) -> dict[str, np.ndarray]:
    """The scale and zero point of uint8 weights in [-r, r], as onnxruntime 1.24 and later compute them (all of
    0..255, zero at 128), given whole: onnxruntime 1.23, the last for Python 3.10, kept 255 out (zero at 127), so
    a Jetson's export was another model (vectors 0.99 alike, threshold 0.596 for 0.605)."""
    scale = np.float32(2.0 * float(np.float32(r)) / UINT8_MAX)
    return {"scale": np.array(scale, np.float32), "zero_point": np.array((UINT8_MAX + 1) // 2, np.uint8)}


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
    dtype = np.float64 if np.issubdtype(weights.dtype, np.floating) else np.int32
    magnitude = np.abs(np.moveaxis(weights.astype(dtype), axis, 0).reshape(weights.shape[axis], -1))
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
