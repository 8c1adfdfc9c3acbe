"""compressor plugin: a Ray executor for the optimizer. Importing this package does not import ray."""
