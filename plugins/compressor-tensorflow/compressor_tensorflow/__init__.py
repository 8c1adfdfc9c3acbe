"""compressor-tensorflow: TensorFlow SavedModels and Keras models for compressor."""

__version__ = "0.1.0"
