"""Static int8 quantisation of exported image encoders with onnxruntime's tools."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def quantize_image_encoder(fp32: Path, int8: Path, calibration: list[np.ndarray], input_name: str = "image") -> None:
    """Quantise weights (per channel, int8) and activations (uint8) using calibration batches of one image."""
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
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)


def quantize_text_encoder(fp32: Path, int8: Path) -> None:
    """Text towers are matrix products over token embeddings: dynamic int8 quantisation of their weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
