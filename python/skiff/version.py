"""Versions: Skiff's own (one source, the Cargo workspace) and the Engine API's."""

from skiff._native import __version__

#: The newest Docker Engine API version skiffd speaks (docker CLI 28.5).
API_VERSION = "1.51"
#: The oldest one it still accepts.
MIN_API_VERSION = "1.40"


def parse_api_version(text: str) -> tuple[int, int]:
    """``"1.51"`` -> ``(1, 51)``; raises ValueError on anything else."""
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ValueError(f"invalid API version {text!r}")
    return int(major), int(minor)


__all__ = ["API_VERSION", "MIN_API_VERSION", "__version__", "parse_api_version"]
