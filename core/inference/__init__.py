"""Prediction: the tile grid, blending, the predictor, batch segmentation of folders.

This file imports nothing: importing a module of the package loads only what it needs.
"""
