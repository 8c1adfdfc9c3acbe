"""compressor: make trained models smaller and faster, and prove what it cost."""

from compressor.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
