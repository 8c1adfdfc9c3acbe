"""compressor-tensorrt: TensorRT readiness rules checked on the ONNX graph, and engine builds."""
