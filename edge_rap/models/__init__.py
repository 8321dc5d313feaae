"""The one models place: exported models and their manifests (cache.py: lookups never export), the ONNX
Runtime sessions every model runs in (sessions.py; TensorRT's engines: tensorrt.py), and the GGUF VLMs and
whisper models to pull (vlm_registry.py; a file checked for what its name says: file_formats.py, gguf_extent.py)."""
