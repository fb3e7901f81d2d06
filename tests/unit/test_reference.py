"""Reference parsing and normalization; cases from distribution/reference's tests."""

from __future__ import annotations

import time

import pytest

from skiff.errors import InvalidArgument
from skiff.image import reference as r
from skiff.image.reference import Reference

D = "sha256:" + "ab" * 32
D2 = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"


@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/user/app:v1", "docker.io/user/app:v1"),
        ("docker.io/library/foo/bar", "docker.io/library/foo/bar:latest"),
        ("library/foo/bar", "docker.io/library/foo/bar:latest"),
        ("store/foo/bar", "docker.io/store/foo/bar:latest"),
        ("localhost/x", "localhost/x:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("localhost:5000/x:tag", "localhost:5000/x:tag"),
        ("127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian:latest"),
        ("example.com/privatebase", "example.com/privatebase:latest"),
        ("example.com:8000/private/moonbase", "example.com:8000/private/moonbase:latest"),
        ("test-com:8080/foo", "test-com:8080/foo:latest"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest"),
        ("[::1]:5000/x", "[::1]:5000/x:latest"),
        (
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
        ),
        ("test_com/foo", "docker.io/test_com/foo:latest"),
        ("Foo/bar", "Foo/bar:latest"),  # an uppercase first component is a host
        ("192.168.0.1", "docker.io/library/192.168.0.1:latest"),
        ("192.168.0.1:80", "docker.io/library/192.168.0.1:80"),
        ("docker---rules/docker", "docker.io/docker---rules/docker:latest"),
        ("dock__er/docker", "docker.io/dock__er/docker:latest"),
        ("d/docker", "docker.io/d/docker:latest"),
        ("busybox:Tag_1.0-rc", "docker.io/library/busybox:Tag_1.0-rc"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
        (f"busybox:latest@{D}", f"docker.io/library/busybox:latest@{D}"),
        (f"dmcgowan/myapp@{D2}", f"docker.io/dmcgowan/myapp@{D2}"),
        (
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest",
        ),
        ("dbcc1", "docker.io/library/dbcc1:latest"),
        (
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
        ),
    ],
)
def test_normalize(text: str, full: str) -> None:
    ref = r.parse_normalized(text)
    assert ref.string() == full
    assert str(ref) == full
    # the full form parses to itself
    assert r.parse_normalized(full) == ref
    assert r.parse(full) == ref


@pytest.mark.parametrize(
    ("text", "domain", "path", "familiar_name"),
    [
        ("fooo/bar", "docker.io", "fooo/bar", "fooo/bar"),
        ("library/ubuntu", "docker.io", "library/ubuntu", "ubuntu"),
        ("nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu", "nonlibrary/ubuntu"),
        ("other/library", "docker.io", "other/library", "other/library"),
        (
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000",
            "private/moonbase",
            "127.0.0.1:8000/private/moonbase",
        ),
        ("example.com/privatebase", "example.com", "privatebase", "example.com/privatebase"),
        ("ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "ubuntu-12.04-base"),
        ("docker.io/foo", "docker.io", "library/foo", "foo"),
        ("library/foo/bar", "docker.io", "library/foo/bar", "library/foo/bar"),
        ("FOO/bar", "FOO", "bar", "FOO/bar"),
        ("localhost/foo", "localhost", "foo", "localhost/foo"),
    ],
)
def test_domain_path_familiar(text: str, domain: str, path: str, familiar_name: str) -> None:
    ref = r.parse_normalized_named(text)
    assert (ref.domain, ref.path) == (domain, path)
    assert ref.name == f"{domain}/{path}"
    assert ref.familiar_name == familiar_name
    assert r.familiar_name(ref.name) == familiar_name
    assert ref.tag is None and ref.digest is None


def test_familiar_string() -> None:
    short = f"busybox:latest@{D}"
    ref = r.parse_normalized(short)
    assert ref.familiar() == short
    assert r.familiar_string(f"docker.io/library/{short}") == short
    assert r.parse_normalized("user/app").familiar() == "user/app:latest"
    assert r.parse_normalized("localhost:5000/x:1").familiar() == "localhost:5000/x:1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://github.com/docker/docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "docker-/docker",
        "-docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        "busybox:",
        "busybox:-tag",
        "busybox:" + "t" * 129,
        "busybox@sha256:abc",
        "busybox@",
        "a/b c",
        "busybox:latest\n",
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidArgument):
        r.parse_normalized(text)


def test_messages() -> None:
    with pytest.raises(InvalidArgument) as info:
        r.parse_normalized("docker/Docker")
    assert str(info.value) == "invalid reference format: repository name must be lowercase"
    with pytest.raises(InvalidArgument) as info:
        r.parse_normalized("Busybox")
    assert str(info.value) == r.ERR_UPPERCASE
    with pytest.raises(InvalidArgument) as info:
        r.parse_normalized("docker.io/docker/Docker")
    assert str(info.value) == r.ERR_UPPERCASE
    with pytest.raises(InvalidArgument) as info:
        r.parse_normalized("a b")
    assert str(info.value) == "invalid reference format"
    hex64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
    with pytest.raises(InvalidArgument, match="cannot specify 64-byte hexadecimal strings"):
        r.parse_normalized(hex64)


def test_digests_are_sha256_only() -> None:
    with pytest.raises(InvalidArgument, match="unsupported digest algorithm"):
        r.parse_normalized("busybox@sha512:" + "a" * 128)
    with pytest.raises(InvalidArgument, match="invalid checksum digest format"):
        r.parse_normalized("busybox@sha256:" + "A" * 64)
    with pytest.raises(InvalidArgument):
        r.parse_normalized("busybox@sha256:" + "a" * 63)


def test_tag_name_only_and_docker_ref() -> None:
    assert r.parse_normalized_named("busybox").tag is None
    assert r.parse_normalized_named("busybox").tag_name_only().tag == "latest"
    ref = r.parse_normalized(f"busybox@{D}")
    assert ref.tag is None and ref.digest == D
    both = r.parse_docker_ref(f"busybox:1@{D}")
    assert both.string() == f"docker.io/library/busybox@{D}"
    assert r.parse_docker_ref("busybox").string() == "docker.io/library/busybox:latest"


def test_reference_helpers() -> None:
    ref = r.parse_normalized("user/app:v1")
    assert ref.trim() == Reference("docker.io", "user/app")
    assert ref.trim().is_name_only
    assert ref.with_tag("v2").string() == "docker.io/user/app:v2"
    assert ref.with_digest(D).string() == f"docker.io/user/app:v1@{D}"
    with pytest.raises(InvalidArgument, match="invalid tag format"):
        ref.with_tag(".bad")
    with pytest.raises(InvalidArgument):
        ref.with_digest("md5:abc")
    # frozen and hashable
    assert {ref, r.parse_normalized("docker.io/user/app:v1")} == {ref}


def test_registry_endpoint() -> None:
    assert r.DEFAULT_REGISTRY_ENDPOINT == "registry-1.docker.io"
    assert r.registry_endpoint(r.parse_normalized("busybox").domain) == "registry-1.docker.io"
    assert r.registry_endpoint("localhost:5000") == "localhost:5000"


def test_ids() -> None:
    hex64 = "ab" * 32
    assert r.is_image_id(hex64) and r.is_image_id("sha256:" + hex64)
    assert not r.is_image_id(hex64[:-1]) and not r.is_image_id("AB" * 32)
    for text in ("abc", "sha256:abc", hex64, "0"):
        assert r.looks_like_id(text)
    for text in ("busybox", "sha256:", "", "ABC", hex64 + "a", "abc:1"):
        assert not r.looks_like_id(text)


def test_hostile_input_is_fast() -> None:
    start = time.monotonic()
    for text in (
        "a" * 5000 + "!",
        "a-" * 3000 + "!",
        "a." * 3000 + "/!",
        "a" * 300,
        "[" + ":" * 3000,
    ):
        with pytest.raises(InvalidArgument):
            r.parse_normalized(text)
    assert time.monotonic() - start < 2
