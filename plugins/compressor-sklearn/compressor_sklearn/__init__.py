"""compressor-sklearn: scikit-learn, XGBoost and LightGBM models for compressor."""

__version__ = "0.1.0"
