"""The base every stage stands on: errors, progress events, atomic writes, named choices, limits.

This file imports nothing: importing a module of the package loads only what it needs.
"""
