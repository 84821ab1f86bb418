"""Where the network runs: device and precision choice, distributed helpers.

This file imports nothing: importing a module of the package loads only what it needs.
"""
