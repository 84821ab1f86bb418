"""fcn-gui's engine: models, inference, training and data I/O. Never imports Qt."""

__version__ = "0.1.0"
