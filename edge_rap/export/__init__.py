"""One-time model export to ONNX (needs torch; the runtime never imports this package)."""
