"""The package version, in one place (read by pyproject.toml and `unitserve --version`)."""

__version__ = "0.1.0"
