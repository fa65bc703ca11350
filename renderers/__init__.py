"""renderers: cameras, rays, ray marching and volume rendering shared by all of shapegen.

This package never imports :mod:`shapegen`. A pure-torch backend defines correctness and
runs on CPU and CUDA; a nerfacc backend is used on CUDA when available.
"""
