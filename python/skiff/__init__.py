"""Skiff: a Docker-compatible container engine for Linux.

Python orchestrates (daemon, API, registry client, CLI); ``skiff._native``, built
from the Rust crates under ``rust/``, does the work that must be fast.
"""

from skiff.version import __version__

__all__ = ["__version__"]
