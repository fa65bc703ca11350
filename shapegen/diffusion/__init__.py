"""Generative processes shared by the methods: Gaussian diffusion with x0 prediction (LAS-Diffusion)
and conditional optimal-transport flow matching with its ODE samplers (Mosaic-SDF)."""
