"""Learning: datasets, crop sampling, the training step, the trainer, the continuous learner.

This file imports nothing: importing a module of the package loads only what it needs.
"""
