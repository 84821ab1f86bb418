"""The networks (FCN-32s/16s/8s/4s, FCN-ResNet, U-Net), their checkpoints, weights, cost and ONNX export.

This file imports nothing: importing a module of the package loads only what it needs.
"""
