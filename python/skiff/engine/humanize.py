"""Human-readable durations and sizes, worded like Docker's (go-units)."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """go-units' HumanDuration: "Less than a second", "5 seconds", "About a minute",
    "3 hours", "2 weeks", ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def size(n: float) -> str:
    """go-units' HumanSize (decimal units, 3 significant digits): "1.2MB", "512B"."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    value = float(n)
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.4g}{units[i]}"
