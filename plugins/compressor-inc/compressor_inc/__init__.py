"""compressor-inc: Intel Neural Compressor passes (PT2E static INT8, weight-only RTN/GPTQ/AWQ, autotune).

Importing this package imports neither torch nor neural_compressor; they are imported inside the passes and runner.
"""

__version__ = "0.1.0"
