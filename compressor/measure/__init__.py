"""Measurement: size, parameters, ops, sparsity, latency, memory, accuracy and fidelity."""
