"""Fixtures shared by the end-to-end modules."""

from ..containers import image_base

__all__ = ["image_base"]  # the image tests' session-wide base image (tests/containers.py)
