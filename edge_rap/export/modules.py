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


def fold_batch_norms(model, pairs: dict[str, str]) -> int:
    """Fold each batch norm into the convolution before it, in float64 with numpy, and replace it by Identity;
    `pairs`: a convolution's attribute name -> the name of the batch norm that follows it on the same module.
    torch.onnx.export folds them itself, but in float32 with the CPU's own kernels: the folded weights then
    differed in their last bits between AVX2 and AVX-512 (51 of 98 tensors, by up to 2e-6), and so did every file
    exported from them. Basic float64 arithmetic rounds the same on every CPU. How many were folded."""
    import numpy as np
    import torch

    folded = 0
    for module in list(model.modules()):
        for conv_name, bn_name in pairs.items():
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if not isinstance(conv, torch.nn.Conv2d) or not isinstance(bn, torch.nn.BatchNorm2d):
                continue
            gamma, beta, mean, var = (t.detach().double().numpy() for t in
                                      (bn.weight, bn.bias, bn.running_mean, bn.running_var))
            scale = gamma / np.sqrt(var + bn.eps)
            weight = conv.weight.detach().double().numpy() * scale[:, None, None, None]
            bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros_like(scale)
            conv.weight = torch.nn.Parameter(torch.from_numpy(weight.astype(np.float32)))
            conv.bias = torch.nn.Parameter(torch.from_numpy(((bias - mean) * scale + beta).astype(np.float32)))
            setattr(module, bn_name, torch.nn.Identity())
            folded += 1
    return folded
