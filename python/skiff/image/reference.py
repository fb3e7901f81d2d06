"""Image references: Docker's grammar and normalization (distribution/reference).

Grammar (``[\\w]`` is ASCII, as in Go)::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ domain "/" ] path
    domain      := host [ ":" port ]     host: DNS-like name, IPv4, or "[" IPv6 "]"
    path        := component ( "/" component )*
    component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag         := [\\w][\\w.-]{0,127}
    digest      := "sha256:" 64 lowercase hex   (Skiff stores sha256 only)

Normalization (``ParseNormalizedNamed`` + ``TagNameOnly``): the first path component is
a registry host when it holds a "." or ":", is exactly ``localhost``, or has uppercase
letters; otherwise the domain is ``docker.io``, and a one-component path on docker.io
gets ``library/``. ``index.docker.io`` is ``docker.io``. So ``busybox`` is
``docker.io/library/busybox:latest``; its familiar form is ``busybox``.

A bare 64-hex string is an image ID, never a name (``looks_like_id``); callers resolve
IDs and ID prefixes themselves (``skiff.image.metadata.ImageMetadata.resolve``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from skiff.errors import InvalidArgument
from skiff.image.content import validate_digest

DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
#: The registry that serves ``docker.io`` names.
DEFAULT_REGISTRY_ENDPOINT: Final = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
LOCALHOST: Final = "localhost"
NAME_TOTAL_LENGTH_MAX: Final = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(rf"((?:{_DOMAIN}/)?{_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH})", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")

ERR_INVALID_FORMAT: Final = "invalid reference format"
ERR_UPPERCASE: Final = "invalid reference format: repository name must be lowercase"


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``domain`` is empty only for references built by hand."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path``: the repository, without tag or digest."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def string(self) -> str:
        """The full form: ``docker.io/library/busybox:latest``."""
        return self.name + self._suffix()

    def __str__(self) -> str:
        return self.string()

    def _suffix(self) -> str:
        text = f":{self.tag}" if self.tag is not None else ""
        return text + (f"@{self.digest}" if self.digest is not None else "")

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``busybox``, ``user/app``, ``host:5000/x``."""
        return familiar_name(self.name)

    def familiar(self) -> str:
        """The reference as Docker shows it: ``busybox:latest``."""
        return self.familiar_name + self._suffix()

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def tag_name_only(self) -> Reference:
        """Adds the ``latest`` tag when there is neither tag nor digest."""
        return replace(self, tag=DEFAULT_TAG) if self.is_name_only else self

    def trim(self) -> Reference:
        """The repository alone (no tag, no digest)."""
        return Reference(self.domain, self.path)

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=validate_tag(tag))

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=validate_digest(digest))


def validate_tag(tag: str) -> str:
    if not _TAG_RE.fullmatch(tag):
        raise InvalidArgument(f"invalid tag format: {tag!r}")
    return tag


def split_docker_domain(name: str) -> tuple[str, str]:
    """``(domain, remainder)`` of a familiar name, with docker.io and library/ filled in."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == LOCALHOST or any(c in first for c in ".:") or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(text: str) -> Reference:
    """Parses a reference without normalizing it (distribution's ``Parse``)."""
    if not text:
        raise InvalidArgument("repository name must have at least one component")
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        if text.lower() != text and _REFERENCE_RE.fullmatch(text.lower()):
            raise InvalidArgument(ERR_UPPERCASE)
        raise InvalidArgument(ERR_INVALID_FORMAT)
    name, tag, digest = match.groups()
    name_match = _NAME_RE.fullmatch(name)
    assert name_match is not None
    domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest is not None:
        validate_digest(digest)
    return Reference(domain, path, tag, digest)


def parse_normalized_named(text: str) -> Reference:
    """``ParseNormalizedNamed``: the canonical form of a name as users type it, without
    adding a default tag."""
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidArgument(ERR_UPPERCASE)
    return parse(f"{domain}/{remainder}")


def parse_normalized(text: str) -> Reference:
    """The usual daemon form: normalized, ``latest`` added when there is no tag or digest."""
    return parse_normalized_named(text).tag_name_only()


def parse_docker_ref(text: str) -> Reference:
    """``ParseDockerRef``: normalized; a reference with both tag and digest keeps the
    digest only (what a pull fetches)."""
    ref = parse_normalized(text)
    if ref.tag is not None and ref.digest is not None:
        return replace(ref, tag=None)
    return ref


def familiar_name(name: str) -> str:
    """``docker.io/library/busybox`` -> ``busybox``; ``docker.io/user/app`` -> ``user/app``."""
    domain, sep, path = name.partition("/")
    if not sep or domain != DEFAULT_DOMAIN:
        return name
    if path.startswith(OFFICIAL_REPO_PREFIX):
        rest = path[len(OFFICIAL_REPO_PREFIX) :]
        if "/" not in rest:
            return rest
    return path


def familiar_string(text: str) -> str:
    """A reference string in the form Docker shows it."""
    return parse_normalized_named(text).familiar()


def registry_endpoint(domain: str) -> str:
    """The host to contact for a reference's domain."""
    return DEFAULT_REGISTRY_ENDPOINT if domain == DEFAULT_DOMAIN else domain


def is_image_id(text: str) -> bool:
    """A full image ID: 64 lowercase hex, with or without ``sha256:``."""
    return bool(_IDENTIFIER_RE.fullmatch(text.removeprefix("sha256:")))


def looks_like_id(text: str) -> bool:
    """Whether ``text`` could name an image by ID or ID prefix (hex, maybe ``sha256:``).
    Short hex strings are valid names too: resolve as a tag first, then as an ID."""
    return bool(_ID_PREFIX_RE.fullmatch(text))
