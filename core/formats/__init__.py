"""Annotation formats in and out of a project: Pascal VOC, index masks, labelme JSON.

This file imports nothing: importing a module of the package loads only what it needs.
"""
