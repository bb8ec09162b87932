"""Backends that run the round's kernels: the torch reference (autograd), later ONNX Runtime for boards."""
