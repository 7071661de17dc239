"""Suitcase: install one master OS image, derive platform images from it, verify them all."""

__version__ = "0.1.0"
