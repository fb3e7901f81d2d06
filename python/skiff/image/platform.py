"""Platforms (``os/architecture[/variant]``) and choosing one manifest from an index.

Names are Go's (GOOS/GOARCH) as in OCI indexes: ``linux/amd64``, ``linux/arm64/v8``,
``linux/arm/v7``. Matching follows containerd's ``platforms.Only``: platforms are
normalized first (``aarch64`` is ``arm64``, ``arm64/v8`` is ``arm64``, ``arm`` is
``arm/v7``, ``x86_64`` is ``amd64``), then an exact match wins, then the host's
fallbacks in order (``arm/v7`` runs ``v6`` and ``v5``; ``arm64`` runs ``arm/v8``..``v5``;
``amd64`` runs ``386``). Ties go to the entry listed first.
"""

from __future__ import annotations

import platform as _pyplatform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from skiff.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from skiff.image.manifest import Descriptor


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def to_json(self) -> dict[str, object]:
        """The OCI descriptor form (empty fields left out)."""
        out: dict[str, object] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out


_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "loongarch64": "loong64",
    "ppc64el": "ppc64le",
}


def normalize_os(os_name: str) -> str:
    return "darwin" if os_name.lower() == "macos" else os_name.lower()


def normalize_arch(arch: str, variant: str = "") -> tuple[str, str]:
    """containerd's ``normalizeArch``: GOARCH name and the canonical variant."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "amd64":
        return arch, "" if variant in ("", "v1") else variant
    if arch == "arm64":
        if variant in ("8", "v8", "v8.0"):
            return arch, ""
        if variant in ("9", "9.0", "v9.0"):
            return arch, "v9"
        return arch, variant
    if arch == "arm":
        if variant in ("", "7"):
            return arch, "v7"
        if variant in ("5", "6", "8"):
            return arch, "v" + variant
        return arch, variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    arch, variant = normalize_arch(p.architecture, p.variant)
    return replace(p, os=normalize_os(p.os), architecture=arch, variant=variant)


def host_platform() -> Platform:
    """This machine's platform, with the variant Docker reports (``linux/arm64/v8``)."""
    machine = _pyplatform.machine().lower()
    os_name = "linux" if sys.platform.startswith("linux") else normalize_os(sys.platform)
    if machine in ("aarch64", "arm64"):
        return Platform(os_name, "arm64", "v8")
    if machine.startswith("arm"):
        # armv5tel, armv6l, armv7l, armv8l (32-bit on a v8 CPU)
        digit = next((c for c in machine[3:] if c.isdigit()), "7")
        return Platform(os_name, "arm", f"v{digit}")
    arch, variant = normalize_arch(machine)
    return Platform(os_name, arch, variant)


def parse_platform(text: str) -> Platform:
    """``linux``, ``linux/arm64``, ``linux/arm/v7``, or a bare architecture (``arm64``,
    taken as Linux) -> a normalized Platform; InvalidArgument otherwise."""
    parts = text.strip().split("/")
    if not text.strip() or len(parts) > 3 or any(not p for p in parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    if len(parts) == 1:
        word = parts[0].lower()
        if word in ("linux", "windows", "darwin", "freebsd", "macos"):
            host = host_platform()
            return normalize(Platform(word, host.architecture, host.variant))
        return normalize(Platform("linux", word))
    variant = parts[2] if len(parts) == 3 else ""
    return normalize(Platform(parts[0], parts[1], variant))


def fallbacks(p: Platform) -> list[Platform]:
    """The platforms ``p`` runs, best first (containerd's ``platformVector``)."""
    p = normalize(p)
    vector = [p]
    if p.architecture == "amd64":
        level = _variant_number(p.variant)
        if level is not None and level > 1:
            vector += [replace(p, variant=f"v{n}") for n in range(level - 1, 0, -1)]
        vector.append(replace(p, architecture="386", variant=""))
    elif p.architecture == "arm":
        level = _variant_number(p.variant)
        if level is not None and level > 5:
            vector += [replace(p, variant=f"v{n}") for n in range(level - 1, 4, -1)]
    elif p.architecture == "arm64":
        vector += fallbacks(replace(p, architecture="arm", variant=p.variant or "v8"))
    return vector


def _variant_number(variant: str) -> int | None:
    try:
        return int(variant.removeprefix("v"))
    except ValueError:
        return None


def matches(want: Platform, have: Platform) -> bool:
    """Same OS, architecture and variant, after normalization."""
    w, h = normalize(want), normalize(have)
    return (w.os, w.architecture, w.variant) == (h.os, h.architecture, h.variant)


def rank(want: Platform, have: Platform) -> int | None:
    """How good ``have`` is for ``want``: 0 is an exact match; None means it won't run."""
    for i, candidate in enumerate(fallbacks(want)):
        if matches(candidate, have):
            return i
    return None


def select_manifest(entries: Sequence[Descriptor], want: Platform | None = None) -> Descriptor:
    """The index entry to pull for ``want`` (default: the host); NotFound with Docker's
    message when none fits. Entries without a platform are never chosen."""
    want = want or host_platform()
    best: tuple[int, int] | None = None
    chosen: Descriptor | None = None
    for i, entry in enumerate(entries):
        if entry.platform is None:
            continue
        score = rank(want, entry.platform)
        if score is not None and (best is None or (score, i) < best):
            best, chosen = (score, i), entry
    if chosen is None:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    return chosen
