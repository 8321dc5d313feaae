"""Generate: the RAP prompt, the GGUF VLM through llama.cpp (mtmd), and template answers without a VLM."""
