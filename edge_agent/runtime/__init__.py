"""Kernel backends of the neighbour side (numpy, torch, ONNX Runtime), their ONNX export, and the choice among them."""
