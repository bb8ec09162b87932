"""Models behind one contract: the MLP's exact kernels, any torch module through torch.func, the reference CNN."""
