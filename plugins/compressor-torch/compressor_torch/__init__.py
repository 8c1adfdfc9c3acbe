"""compressor-torch: PyTorch models in compressor (loaders, runner, ONNX export, pruning, recovery).

Importing this package imports no torch; torch is imported inside the loaders, passes and runner.
"""

__version__ = "0.1.0"
