"""Image and label I/O: reading images, label maps and class lists, finding image files.

This file imports nothing: importing a module of the package loads only what it needs.
"""
