"""Manifests, indexes, image configs, canonical JSON, chain IDs and platform selection."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from skiff.errors import InvalidArgument, NotFound
from skiff.image import manifest as m
from skiff.image import platform as p
from skiff.image.manifest import Descriptor, ImageConfig, Index, Manifest
from skiff.image.platform import Platform


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


D = [sha(str(i).encode()) for i in range(8)]

DOCKER_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 1457,
        "digest": D[0],
    },
    "layers": [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2220094,
            "digest": D[1],
        },
        {
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "size": 5000,
            "digest": D[2],
            "urls": ["https://example.com/layer"],
        },
    ],
}

OCI_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": D[0],
        "size": 581,
    },
    "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D[1], "size": 3},
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": D[2], "size": 4},
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": D[3], "size": 5},
    ],
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}


def entry(
    digest: str, plat: dict[str, Any] | None, media_type: str = m.OCI_MANIFEST
) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": 100}
    if plat is not None:
        out["platform"] = plat
    return out


OCI_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        entry(D[1], {"architecture": "amd64", "os": "linux"}),
        entry(D[2], {"architecture": "arm", "os": "linux", "variant": "v6"}),
        entry(D[3], {"architecture": "arm", "os": "linux", "variant": "v7"}),
        entry(D[4], {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        entry(D[5], {"architecture": "386", "os": "linux"}),
        entry(D[6], {"architecture": "unknown", "os": "unknown"}),
        entry(D[7], {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5576"}),
    ],
}

BUSYBOX_CONFIG: dict[str, Any] = {
    "architecture": "amd64",
    "config": {
        "Hostname": "",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
        "Image": "sha256:" + "9" * 64,
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
        "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGTERM",
        "User": "nobody",
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000, "Retries": 3},
    },
    "container": "4b3c7a0f6a7c",
    "created": "2023-05-19T20:19:28.186876955Z",
    "docker_version": "20.10.23",
    "history": [
        {
            "created": "2023-05-19T20:19:27.888101342Z",
            "created_by": "/bin/sh -c #(nop) ADD file:b in / ",
        },
        {
            "created": "2023-05-19T20:19:28.186876955Z",
            "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
            "empty_layer": True,
        },
    ],
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [D[1], D[2]]},
}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=3).encode()


# --- manifests ---


def test_docker_manifest() -> None:
    parsed = m.parse_manifest(dumps(DOCKER_MANIFEST))
    assert isinstance(parsed, Manifest)
    assert parsed.media_type == m.DOCKER_MANIFEST
    assert parsed.config == Descriptor(m.DOCKER_CONFIG, D[0], 1457)
    assert [layer.digest for layer in parsed.layers] == [D[1], D[2]]
    assert not parsed.layers[0].is_foreign and parsed.layers[1].is_foreign
    assert parsed.layers[1].urls == ("https://example.com/layer",)
    assert parsed.is_image
    assert [m.layer_compression(layer.media_type) for layer in parsed.layers] == ["gzip", "gzip"]
    # round trip through our canonical form
    assert m.parse_manifest(parsed.to_bytes()) == parsed
    assert json.loads(parsed.to_bytes()) == DOCKER_MANIFEST


def test_oci_manifest() -> None:
    parsed = m.parse_manifest(json.dumps(OCI_MANIFEST))
    assert isinstance(parsed, Manifest)
    assert parsed.media_type == m.OCI_MANIFEST
    assert parsed.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert [m.layer_compression(x.media_type) for x in parsed.layers] == ["gzip", "zstd", "none"]
    assert json.loads(parsed.to_bytes()) == OCI_MANIFEST


def test_media_type_from_content_type_or_shape() -> None:
    bare = {k: v for k, v in OCI_MANIFEST.items() if k != "mediaType"}
    assert m.parse_manifest(json.dumps(bare)).media_type == m.OCI_MANIFEST
    assert m.parse_manifest(json.dumps(bare), m.DOCKER_MANIFEST).media_type == m.DOCKER_MANIFEST
    assert m.parse_manifest(json.dumps(bare), "application/json").media_type == m.OCI_MANIFEST
    bare_index = {k: v for k, v in OCI_INDEX.items() if k != "mediaType"}
    assert isinstance(m.parse_manifest(json.dumps(bare_index)), Index)


def test_index() -> None:
    parsed = m.parse_manifest(json.dumps(OCI_INDEX), m.OCI_INDEX)
    assert isinstance(parsed, Index)
    assert len(parsed.manifests) == 7
    assert parsed.manifests[3].platform == Platform("linux", "arm64", "v8")
    assert parsed.manifests[6].platform is not None
    assert parsed.manifests[6].platform.os_version == "10.0.17763.5576"
    assert json.loads(parsed.to_bytes()) == OCI_INDEX
    docker_list = dict(OCI_INDEX, mediaType=m.DOCKER_MANIFEST_LIST)
    parsed_list = m.parse_manifest(json.dumps(docker_list))
    assert isinstance(parsed_list, Index) and parsed_list.media_type == m.DOCKER_MANIFEST_LIST


def bad(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (b"not json", None, "invalid manifest"),
        (b"[]", None, "expected a JSON object"),
        (bad(dict(DOCKER_MANIFEST, schemaVersion=1)), None, "schema 1"),
        (
            bad({"schemaVersion": 1, "name": "x", "fsLayers": []}),
            m.DOCKER_SCHEMA1_SIGNED,
            "schema 1",
        ),
        (bad(dict(DOCKER_MANIFEST, schemaVersion=3)), None, "schemaVersion"),
        (
            bad(dict(DOCKER_MANIFEST, mediaType="text/plain")),
            None,
            "unsupported manifest media type",
        ),
        (bad(DOCKER_MANIFEST), m.OCI_MANIFEST, "does not match"),
        (bad(dict(DOCKER_MANIFEST, manifests=[])), None, "must not have manifests"),
        (bad(dict(OCI_INDEX, layers=[])), None, "must not have config or layers"),
        (bad({"schemaVersion": 2}), None, "cannot tell"),
        (bad(dict(DOCKER_MANIFEST, layers=None)), None, "layers must be a list"),
        (
            bad({k: v for k, v in DOCKER_MANIFEST.items() if k != "config"}),
            None,
            "config is required",
        ),
        (
            bad(dict(DOCKER_MANIFEST, config=dict(DOCKER_MANIFEST["config"], digest="sha256:abc"))),
            None,
            "digest",
        ),
        (
            bad(
                dict(
                    DOCKER_MANIFEST,
                    config=dict(DOCKER_MANIFEST["config"], digest="sha512:" + "a" * 128),
                )
            ),
            None,
            "unsupported digest algorithm",
        ),
        (bad(dict(DOCKER_MANIFEST, config=dict(DOCKER_MANIFEST["config"], size=-1))), None, "size"),
        (
            bad(dict(DOCKER_MANIFEST, config=dict(DOCKER_MANIFEST["config"], size="1"))),
            None,
            "size",
        ),
        (
            bad(dict(DOCKER_MANIFEST, config=dict(DOCKER_MANIFEST["config"], mediaType=""))),
            None,
            "mediaType",
        ),
        (bad(dict(OCI_INDEX, manifests=[entry(D[1], {"os": 1})])), None, "platform"),
        (bad(dict(OCI_MANIFEST, annotations={"a": 1})), None, "annotations"),
    ],
)
def test_bad_manifests(data: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        m.parse_manifest(data, content_type)


def test_artifact_is_not_an_image() -> None:
    artifact = dict(
        OCI_MANIFEST,
        config={"mediaType": m.OCI_EMPTY, "digest": D[0], "size": 2},
        layers=[{"mediaType": "application/vnd.in-toto+json", "digest": D[1], "size": 9}],
    )
    parsed = m.parse_manifest(json.dumps(artifact))
    assert isinstance(parsed, Manifest) and not parsed.is_image
    with pytest.raises(InvalidArgument, match="unsupported layer media type"):
        m.layer_compression(parsed.layers[0].media_type)


# --- image config ---


def test_image_config() -> None:
    config = ImageConfig.from_json(dumps(BUSYBOX_CONFIG))
    assert config.platform == Platform("linux", "amd64")
    assert config.diff_ids == [D[1], D[2]]
    assert config.created == "2023-05-19T20:19:28.186876955Z"
    c = config.config
    assert c.cmd == ["sh"] and c.entrypoint is None
    assert c.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert c.exposed_ports == {"80/tcp": {}}
    assert c.user == "nobody" and c.stop_signal == "SIGTERM" and c.labels == {}
    assert c.healthcheck is not None
    assert c.healthcheck.test == ["CMD-SHELL", "true"]
    assert c.healthcheck.interval == 30_000_000_000 and c.healthcheck.retries == 3
    assert c.extra["Image"] == "sha256:" + "9" * 64
    assert [h.empty_layer for h in config.history] == [False, True]
    assert config.extra["docker_version"] == "20.10.23"
    # what we write keeps everything, and reads back equal
    again = ImageConfig.from_json(config.to_bytes())
    assert again == config
    assert again.to_bytes() == config.to_bytes()


def test_entrypoint_empty_vs_unset() -> None:
    base = {"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    unset = ImageConfig.from_json(json.dumps(dict(base, config={})))
    empty = ImageConfig.from_json(json.dumps(dict(base, config={"Entrypoint": [], "Cmd": None})))
    assert unset.config.entrypoint is None and empty.config.entrypoint == []
    assert "Entrypoint" not in unset.to_json()["config"]
    assert empty.to_json()["config"]["Entrypoint"] == []
    assert ImageConfig.from_json(empty.to_bytes()).config.entrypoint == []
    no_config = ImageConfig.from_json(json.dumps(base))
    assert no_config.config.cmd is None and no_config.diff_ids == []


def test_canonical_json_is_deterministic() -> None:
    built = ImageConfig(architecture="amd64", os="linux", diff_ids=[D[1]])
    built.config.env = ["A=1"]
    built.config.labels = {"z": "1", "a": "ü"}
    data = built.to_bytes()
    assert data == m.canonical_json(json.loads(data))
    assert b" " not in data and "ü".encode() in data
    keys = list(json.loads(data))
    assert keys == sorted(keys)
    assert data == ImageConfig.from_json(data).to_bytes()
    assert m.canonical_json({"b": [1, {"d": 1, "c": None}], "a": "<&>"}) == (
        b'{"a":"<&>","b":[1,{"c":null,"d":1}]}'
    )
    lone = json.loads('{"x": "\\ud800"}')
    assert m.canonical_json(lone) == b'{"x":"\\ud800"}'


def test_descriptors_are_hashable() -> None:
    parsed = m.parse_manifest(dumps(DOCKER_MANIFEST))
    assert isinstance(parsed, Manifest)
    assert len({parsed.config, *parsed.layers, parsed.config}) == 3
    assert hash(parsed) == hash(m.parse_manifest(parsed.to_bytes()))


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rootfs": None}, "rootfs"),
        ({"rootfs": {"type": "other", "diff_ids": []}}, "rootfs type"),
        ({"rootfs": {"type": "layers", "diff_ids": ["nope"]}}, "digest"),
        ({"config": {"Env": "A=1"}}, "Env"),
        ({"config": {"Cmd": [1]}}, "Cmd"),
        ({"config": {"Labels": {"a": 1}}}, "Labels"),
        ({"config": {"ExposedPorts": ["80/tcp"]}}, "ExposedPorts"),
        ({"config": {"Healthcheck": {"Interval": "30s"}}}, "Interval"),
        ({"config": {"ArgsEscaped": "yes"}}, "ArgsEscaped"),
        ({"history": {}}, "history"),
        ({"history": [{"empty_layer": "true"}]}, "empty_layer"),
        ({"architecture": 1}, "architecture"),
    ],
)
def test_bad_configs(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ImageConfig.from_json(json.dumps(dict(BUSYBOX_CONFIG, **patch)))


def test_check_layers() -> None:
    manifest = m.parse_manifest(dumps(DOCKER_MANIFEST))
    assert isinstance(manifest, Manifest)
    config = ImageConfig.from_json(dumps(BUSYBOX_CONFIG))
    m.check_layers(manifest, config)
    config.diff_ids.append(D[3])
    with pytest.raises(InvalidArgument, match="don't match"):
        m.check_layers(manifest, config)


# --- chain IDs ---


def test_chain_ids_by_hand() -> None:
    d0, d1, d2 = D[1], D[2], D[3]
    c1 = "sha256:" + hashlib.sha256(f"{d0} {d1}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {d2}".encode()).hexdigest()
    assert m.chain_ids([d0, d1, d2]) == [d0, c1, c2]
    assert m.chain_ids([]) == []
    assert m.chain_id(None, d0) == d0
    assert m.chain_id(c1, d2) == c2
    assert ImageConfig(architecture="amd64", os="linux", diff_ids=[d0, d1]).chain_ids() == [d0, c1]
    with pytest.raises(InvalidArgument):
        m.chain_ids(["sha256:short"])


def test_chain_id_known_vector() -> None:
    # from the shell: printf '%s %s' "$parent" "$diff_id" | sha256sum
    a, b, c = ("sha256:" + x * 64 for x in "abc")
    assert m.chain_ids([a, b, c]) == [
        a,
        "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c",
        "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588",
    ]


# --- platforms ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/i386", Platform("linux", "386")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("arm64", Platform("linux", "arm64")),
        ("linux/ppc64le", Platform("linux", "ppc64le")),
    ],
)
def test_parse_platform(text: str, expected: Platform) -> None:
    assert p.parse_platform(text) == expected


@pytest.mark.parametrize("text", ["", "/", "linux/", "linux//v7", "a/b/c/d"])
def test_parse_platform_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        p.parse_platform(text)


def test_platform_str() -> None:
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(Platform("linux", "amd64")) == "linux/amd64"


def test_host_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for machine, expected in [
        ("x86_64", Platform("linux", "amd64")),
        ("aarch64", Platform("linux", "arm64", "v8")),
        ("armv7l", Platform("linux", "arm", "v7")),
        ("armv6l", Platform("linux", "arm", "v6")),
        ("i686", Platform("linux", "386")),
        ("riscv64", Platform("linux", "riscv64")),
        ("s390x", Platform("linux", "s390x")),
    ]:
        monkeypatch.setattr("platform.machine", lambda m=machine: m)
        assert p.host_platform() == expected


def index_entries() -> tuple[Descriptor, ...]:
    parsed = m.parse_manifest(json.dumps(OCI_INDEX))
    assert isinstance(parsed, Index)
    return parsed.manifests


@pytest.mark.parametrize(
    ("want", "digest"),
    [
        (Platform("linux", "amd64"), D[1]),
        (Platform("linux", "arm64", "v8"), D[4]),  # arm64/v8 == arm64
        (Platform("linux", "arm64"), D[4]),
        (Platform("linux", "arm", "v7"), D[3]),
        (Platform("linux", "arm", "v6"), D[2]),
        (Platform("linux", "arm"), D[3]),
        (Platform("linux", "386"), D[5]),
        (Platform("windows", "amd64"), D[7]),
    ],
)
def test_select_manifest(want: Platform, digest: str) -> None:
    assert p.select_manifest(index_entries(), want).digest == digest


def test_select_manifest_fallbacks() -> None:
    entries = index_entries()
    only = [e for e in entries if e.digest in (D[2], D[5])]  # arm/v6 and 386
    assert p.select_manifest(only, Platform("linux", "arm", "v7")).digest == D[2]
    assert p.select_manifest(only, Platform("linux", "arm64", "v8")).digest == D[2]
    assert p.select_manifest(only, Platform("linux", "amd64")).digest == D[5]
    # exact beats fallback whatever the order; ties go to the first listed
    assert p.select_manifest(list(reversed(entries)), Platform("linux", "amd64")).digest == D[1]
    twice = [entries[0], Descriptor(m.OCI_MANIFEST, D[6], 1, platform=Platform("linux", "amd64"))]
    assert p.select_manifest(twice, Platform("linux", "amd64")).digest == D[1]
    assert [str(x) for x in p.fallbacks(Platform("linux", "arm64", "v8"))] == [
        "linux/arm64",
        "linux/arm/v8",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/arm/v5",
    ]
    assert [str(x) for x in p.fallbacks(Platform("linux", "amd64", "v3"))] == [
        "linux/amd64/v3",
        "linux/amd64/v2",
        "linux/amd64/v1",
        "linux/386",
    ]


def test_select_manifest_not_found() -> None:
    entries = index_entries()
    with pytest.raises(NotFound) as info:
        p.select_manifest(entries, Platform("linux", "s390x"))
    assert str(info.value) == "no matching manifest for linux/s390x in the manifest list entries"
    with pytest.raises(NotFound, match="linux/arm/v5"):
        p.select_manifest([e for e in entries if e.digest == D[3]], Platform("linux", "arm", "v5"))
    # entries without a platform and unknown/unknown attestations are never chosen
    unplatformed = [Descriptor(m.OCI_MANIFEST, D[1], 1)]
    with pytest.raises(NotFound):
        p.select_manifest(unplatformed, Platform("linux", "amd64"))
    with pytest.raises(NotFound):
        p.select_manifest([entries[5]], Platform("linux", "riscv64"))


def test_select_manifest_defaults_to_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert p.select_manifest(index_entries()).digest == D[4]
    with pytest.raises(NotFound, match="no matching manifest for linux/arm64/v8 in the"):
        p.select_manifest([index_entries()[0]])
