"""compressor plugin for Hugging Face transformers: model folders, ONNX export, text data, transformer passes."""

__version__ = "0.1.0"
