"""Reusable ``nn.Module`` s: 3D UNets (dense and sparse), a set Transformer, MLPs, hash-grid encoding,
sketch and text encoders, local attention and weight EMAs."""
