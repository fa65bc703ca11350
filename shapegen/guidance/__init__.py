"""2D diffusion guidance: VSD and SDS score distillation from a Stable Diffusion prior, loading that
prior, and a tiny randomly initialised Stable Diffusion for tests."""
