"""Manifests, indexes and image configs: OCI and Docker schema 2, parsed and validated.

Formats read: OCI image manifest and index, Docker schema 2 manifest and manifest list
(schema 1 is refused). Every descriptor's digest is checked to be ``sha256:<hex>``.

JSON that Skiff writes (configs of committed/built images, manifests it pushes) goes
through ``canonical_json``: keys sorted, no whitespace, UTF-8, no HTML escaping. Docker
writes Go struct order instead, so configs Docker wrote do not byte-match ours; what
matters is that the bytes Skiff writes for one value are always the same, so a digest
computed once stays valid. Configs read from elsewhere are stored as their exact bytes
and never re-serialized for their digest.

Chain IDs (OCI image spec): ``ChainID(L0) = DiffID(L0)``,
``ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from skiff.errors import InvalidArgument
from skiff.image.content import digest_bytes, validate_digest
from skiff.image.platform import Platform

# --- media types ---

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"

OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_FOREIGN: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_FOREIGN_GZIP: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_FOREIGN_ZSTD: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD: Final = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_LAYER_FOREIGN: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_LAYER_FOREIGN_GZIP: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES: Final = frozenset({OCI_CONFIG, DOCKER_CONFIG})
#: The Accept header of a pull, best first.
ACCEPT: Final = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

#: layer media type -> compression ("none", "gzip", "zstd")
LAYER_COMPRESSION: Final[Mapping[str, str]] = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_FOREIGN: "none",
    OCI_LAYER_FOREIGN_GZIP: "gzip",
    OCI_LAYER_FOREIGN_ZSTD: "zstd",
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_LAYER_FOREIGN: "none",
    DOCKER_LAYER_FOREIGN_GZIP: "gzip",
}
FOREIGN_LAYER_TYPES: Final = frozenset(
    {
        OCI_LAYER_FOREIGN,
        OCI_LAYER_FOREIGN_GZIP,
        OCI_LAYER_FOREIGN_ZSTD,
        DOCKER_LAYER_FOREIGN,
        DOCKER_LAYER_FOREIGN_GZIP,
    }
)


def layer_compression(media_type: str) -> str:
    """``none``, ``gzip`` or ``zstd``; InvalidArgument for a type that is not a layer."""
    try:
        return LAYER_COMPRESSION[media_type]
    except KeyError:
        raise InvalidArgument(f"unsupported layer media type {media_type!r}") from None


def layer_media_type(compression: str) -> str:
    """The OCI layer media type for ``none``, ``gzip`` or ``zstd``."""
    types = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}
    try:
        return types[compression]
    except KeyError:
        raise InvalidArgument(f"unsupported layer compression {compression!r}") from None


def canonical_json(value: Any) -> bytes:
    """The bytes Skiff writes for a JSON value (see the module header). Strings that are
    not valid Unicode (lone surrogates from ``\\ud800`` escapes) force ASCII escaping of
    the whole value, which is still deterministic."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- chain IDs ---


def chain_id(parent: str | None, diff_id: str) -> str:
    """The chain ID of layer ``diff_id`` on top of the chain ``parent``."""
    validate_digest(diff_id)
    if parent is None:
        return diff_id
    return digest_bytes(f"{validate_digest(parent)} {diff_id}".encode())


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of each prefix of ``diff_ids``."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff_id))
    return out


# --- JSON field readers: each names the field in its error ---


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {what}: expected a JSON object")
    return value


def _str(obj: Mapping[str, Any], key: str, what: str, default: str = "") -> str:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid {what}: {key} must be a string")
    return value


def _int(obj: Mapping[str, Any], key: str, what: str, default: int = 0) -> int:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"invalid {what}: {key} must be an integer")
    return value


def _strs(obj: Mapping[str, Any], key: str, what: str) -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid {what}: {key} must be a list of strings")
    return value


def _str_map(obj: Mapping[str, Any], key: str, what: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"invalid {what}: {key} must map strings to strings")
    return dict(value)


def _set(obj: Mapping[str, Any], key: str, what: str) -> dict[str, dict[str, Any]]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise InvalidArgument(f"invalid {what}: {key} must map strings to objects")
    return {k: dict(v) for k, v in value.items()}


def _load(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"invalid {what}: {err}") from None
    return _obj(value, what)


# --- descriptors, manifests, indexes ---


def _platform_from_json(value: Any) -> Platform:
    obj = _obj(value, "platform")
    features = _strs(obj, "os.features", "platform") or []
    return Platform(
        os=_str(obj, "os", "platform"),
        architecture=_str(obj, "architecture", "platform"),
        variant=_str(obj, "variant", "platform"),
        os_version=_str(obj, "os.version", "platform"),
        os_features=tuple(features),
    )


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None
    artifact_type: str = ""

    @classmethod
    def from_json(cls, value: Any) -> Descriptor:
        obj = _obj(value, "descriptor")
        media_type = _str(obj, "mediaType", "descriptor")
        if not media_type:
            raise InvalidArgument("invalid descriptor: mediaType is required")
        digest = validate_digest(_str(obj, "digest", "descriptor"))
        size = _int(obj, "size", "descriptor", -1)
        if size < 0:
            raise InvalidArgument(f"invalid descriptor {digest}: size is required")
        platform = obj.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=tuple(_strs(obj, "urls", "descriptor") or ()),
            annotations=_str_map(obj, "annotations", "descriptor"),
            platform=None if platform is None else _platform_from_json(platform),
            artifact_type=_str(obj, "artifactType", "descriptor"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @property
    def is_foreign(self) -> bool:
        """A non-distributable layer: fetched from ``urls``, never pushed."""
        return self.media_type in FOREIGN_LAYER_TYPES


@dataclass(frozen=True)
class Manifest:
    """An image manifest: OCI or Docker schema 2 (``media_type`` tells which)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    subject: Descriptor | None = None
    artifact_type: str = ""

    @property
    def is_image(self) -> bool:
        """Whether this is a runnable image (not an artifact such as an attestation)."""
        return self.config.media_type in CONFIG_TYPES and all(
            layer.media_type in LAYER_COMPRESSION for layer in self.layers
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True)
class Index:
    """A multi-platform index: OCI image index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    subject: Descriptor | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [m.to_json() for m in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


def _detect_media_type(obj: Mapping[str, Any], content_type: str | None) -> str:
    declared = _str(obj, "mediaType", "manifest")
    known = MANIFEST_TYPES | INDEX_TYPES
    if content_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or declared in (
        DOCKER_SCHEMA1,
        DOCKER_SCHEMA1_SIGNED,
    ):
        raise InvalidArgument("Docker image manifest schema 1 is not supported")
    if declared and content_type in known and declared != content_type:
        raise InvalidArgument(
            f"manifest media type {declared!r} does not match content type {content_type!r}"
        )
    media_type = declared or (content_type if content_type in known else "")
    if not media_type:  # OCI allows leaving mediaType out: go by the fields
        if "manifests" in obj and "config" not in obj and "layers" not in obj:
            media_type = OCI_INDEX
        elif "config" in obj and "manifests" not in obj:
            media_type = OCI_MANIFEST
        else:
            raise InvalidArgument("cannot tell whether the manifest is an index or a manifest")
    if media_type not in known:
        raise InvalidArgument(f"unsupported manifest media type {media_type!r}")
    if media_type in INDEX_TYPES and ("config" in obj or "layers" in obj):
        raise InvalidArgument(f"media type {media_type} must not have config or layers")
    if media_type in MANIFEST_TYPES and "manifests" in obj:
        raise InvalidArgument(f"media type {media_type} must not have manifests")
    return media_type


def parse_manifest(data: bytes | str, content_type: str | None = None) -> Manifest | Index:
    """Parses a manifest or index (``content_type``: the registry's Content-Type header,
    used when the JSON leaves ``mediaType`` out)."""
    obj = _load(data, "manifest")
    version = obj.get("schemaVersion")
    if version == 1:
        raise InvalidArgument("Docker image manifest schema 1 is not supported")
    if version != 2:
        raise InvalidArgument(f"unsupported manifest schemaVersion {version!r}")
    media_type = _detect_media_type(obj, content_type)
    annotations = _str_map(obj, "annotations", "manifest")
    subject = None if obj.get("subject") is None else Descriptor.from_json(obj["subject"])
    if media_type in INDEX_TYPES:
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("invalid index: manifests must be a list")
        return Index(
            media_type, tuple(Descriptor.from_json(m) for m in entries), annotations, subject
        )
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("invalid manifest: layers must be a list")
    if obj.get("config") is None:
        raise InvalidArgument("invalid manifest: config is required")
    return Manifest(
        media_type=media_type,
        config=Descriptor.from_json(obj["config"]),
        layers=tuple(Descriptor.from_json(layer) for layer in layers),
        annotations=annotations,
        subject=subject,
        artifact_type=_str(obj, "artifactType", "manifest"),
    )


# --- image config ---


@dataclass
class HealthConfig:
    """Docker's ``Healthcheck``; durations in nanoseconds (0: inherit the default)."""

    test: list[str] = field(default_factory=list)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    _KEYS = (
        ("Interval", "interval"),
        ("Timeout", "timeout"),
        ("StartPeriod", "start_period"),
        ("StartInterval", "start_interval"),
        ("Retries", "retries"),
    )

    @classmethod
    def from_json(cls, value: Any) -> HealthConfig:
        obj = _obj(value, "image config: Healthcheck")
        health = cls(test=_strs(obj, "Test", "Healthcheck") or [])
        for key, attr in cls._KEYS:
            setattr(health, attr, _int(obj, key, "Healthcheck"))
        return health

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": self.test} if self.test else {}
        for key, attr in self._KEYS:
            if getattr(self, attr):
                out[key] = getattr(self, attr)
        return out


@dataclass
class ContainerConfig:
    """The ``config`` of an image: defaults for containers run from it. ``cmd`` and
    ``entrypoint`` keep None (not set) apart from [] (set to nothing)."""

    user: str = ""
    exposed_ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    healthcheck: HealthConfig | None = None
    args_escaped: bool = False
    on_build: list[str] | None = None
    shell: list[str] | None = None
    #: fields Skiff does not model (Hostname, Image, ... in configs Docker wrote)
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset(
        [
            "User",
            "ExposedPorts",
            "Env",
            "Entrypoint",
            "Cmd",
            "Volumes",
            "WorkingDir",
            "Labels",
            "StopSignal",
            "Healthcheck",
            "ArgsEscaped",
            "OnBuild",
            "Shell",
        ]
    )

    @classmethod
    def from_json(cls, value: Any) -> ContainerConfig:
        what = "image config"
        obj = _obj(value, what)
        health = obj.get("Healthcheck")
        escaped = obj.get("ArgsEscaped", False)
        if not isinstance(escaped, bool):
            raise InvalidArgument(f"invalid {what}: ArgsEscaped must be a boolean")
        return cls(
            user=_str(obj, "User", what),
            exposed_ports=_set(obj, "ExposedPorts", what),
            env=_strs(obj, "Env", what) or [],
            entrypoint=_strs(obj, "Entrypoint", what),
            cmd=_strs(obj, "Cmd", what),
            volumes=_set(obj, "Volumes", what),
            working_dir=_str(obj, "WorkingDir", what),
            labels=_str_map(obj, "Labels", what),
            stop_signal=_str(obj, "StopSignal", what),
            healthcheck=None if health is None else HealthConfig.from_json(health),
            args_escaped=escaped,
            on_build=_strs(obj, "OnBuild", what),
            shell=_strs(obj, "Shell", what),
            extra={k: v for k, v in obj.items() if k not in cls._KNOWN},
        )

    def to_json(self) -> dict[str, Any]:
        out = dict(self.extra)
        values: dict[str, Any] = {
            "User": self.user,
            "ExposedPorts": self.exposed_ports,
            "Env": self.env,
            "WorkingDir": self.working_dir,
            "Labels": self.labels,
            "Volumes": self.volumes,
            "StopSignal": self.stop_signal,
            "ArgsEscaped": self.args_escaped,
        }
        out.update({k: v for k, v in values.items() if v})
        for key, seq in (("Entrypoint", self.entrypoint), ("Cmd", self.cmd)):
            if seq is not None:
                out[key] = seq
        for key, seq in (("OnBuild", self.on_build), ("Shell", self.shell)):
            if seq:
                out[key] = seq
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_json()
        return out


@dataclass
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_json(cls, value: Any) -> History:
        obj = _obj(value, "image config: history entry")
        empty = obj.get("empty_layer", False)
        if not isinstance(empty, bool):
            raise InvalidArgument("invalid image config: empty_layer must be a boolean")
        what = "history entry"
        return cls(
            created=_str(obj, "created", what),
            created_by=_str(obj, "created_by", what),
            author=_str(obj, "author", what),
            comment=_str(obj, "comment", what),
            empty_layer=empty,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: v
            for k, v in (
                ("created", self.created),
                ("created_by", self.created_by),
                ("author", self.author),
                ("comment", self.comment),
            )
            if v
        }
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass
class ImageConfig:
    """An image config (OCI ``application/vnd.oci.image.config.v1+json``, which Docker's
    ``application/vnd.docker.container.image.v1+json`` extends)."""

    architecture: str
    os: str
    diff_ids: list[str] = field(default_factory=list)
    variant: str = ""
    os_version: str = ""
    os_features: list[str] = field(default_factory=list)
    created: str = ""
    author: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    history: list[History] = field(default_factory=list)
    #: top-level fields Skiff does not model (container, container_config, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset(
        [
            "architecture",
            "os",
            "variant",
            "os.version",
            "os.features",
            "created",
            "author",
            "config",
            "rootfs",
            "history",
        ]
    )

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version)

    @classmethod
    def from_json(cls, data: bytes | str) -> ImageConfig:
        what = "image config"
        obj = _load(data, what)
        rootfs = _obj(obj.get("rootfs"), "image config: rootfs")
        if rootfs.get("type") != "layers":
            raise InvalidArgument(f"invalid image config: rootfs type {rootfs.get('type')!r}")
        diff_ids = [validate_digest(d) for d in _strs(rootfs, "diff_ids", what) or []]
        history = obj.get("history")
        history = [] if history is None else history
        if not isinstance(history, list):
            raise InvalidArgument("invalid image config: history must be a list")
        config = obj.get("config")
        return cls(
            architecture=_str(obj, "architecture", what),
            os=_str(obj, "os", what) or "linux",
            diff_ids=diff_ids,
            variant=_str(obj, "variant", what),
            os_version=_str(obj, "os.version", what),
            os_features=_strs(obj, "os.features", what) or [],
            created=_str(obj, "created", what),
            author=_str(obj, "author", what),
            config=ContainerConfig() if config is None else ContainerConfig.from_json(config),
            history=[History.from_json(h) for h in history],
            extra={k: v for k, v in obj.items() if k not in cls._KNOWN},
        )

    def to_json(self) -> dict[str, Any]:
        out = dict(self.extra)
        out["architecture"] = self.architecture
        out["os"] = self.os
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        out["config"] = self.config.to_json()
        for key, value in (
            ("variant", self.variant),
            ("os.version", self.os_version),
            ("os.features", self.os_features),
            ("created", self.created),
            ("author", self.author),
        ):
            if value:
                out[key] = value
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        return out

    def to_bytes(self) -> bytes:
        """The canonical bytes; their sha256 is the image ID."""
        return canonical_json(self.to_json())

    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)


def check_layers(manifest: Manifest, config: ImageConfig) -> None:
    """InvalidArgument unless the manifest has one layer per diff ID of the config."""
    if len(manifest.layers) != len(config.diff_ids):
        raise InvalidArgument(
            f"layers from manifest don't match image configuration: {len(manifest.layers)} "
            f"layers, {len(config.diff_ids)} diff IDs"
        )
    if not manifest.is_image:
        raise InvalidArgument(f"manifest of {manifest.config.media_type!r} is not an image")
