"""Data: datasets and datamodules (M-SDF tensors, LAS volumes, posed-image scenes), the procedural
shape set and its captions, sketches, and camera samplers for score distillation."""
