"""The one torch wrapper exports need: a model's method (encode_image, extract_features ...) as forward()."""

from __future__ import annotations


def method_as_module(model, method: str):
    """A torch module whose forward(x) is model.<method>(x), so that ONNX export traces just that path."""
    import torch

    class Method(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            return getattr(self.model, method)(x)

    return Method().eval()
