"""The learning method, pure and free of I/O: data, model, topology, kernels, algorithms, messages."""
