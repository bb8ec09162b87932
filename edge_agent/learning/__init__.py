"""The learning method, pure and free of I/O: data and split, model and Jacobians, projections, NTK evolution, codecs,
messages, topology, settings, algorithms and the round exchange."""
