"""The project store: one project's images, their labels and states, its lock.

This file imports nothing: importing a module of the package loads only what it needs.
"""
