"""The one models place: exported models and their manifests (cache.py: lookups never export), the ONNX
Runtime sessions every model runs in (sessions.py), and the GGUF VLMs to pull (vlm_registry.py)."""
