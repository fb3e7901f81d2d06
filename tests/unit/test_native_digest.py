"""skiff._native hashing against hashlib and known vectors; error mapping; GIL release."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from skiff import _native
from skiff.errors import DigestMismatch, InvalidArgument, SkiffError
from tests.support.gil import MIN_TICKS, ticks_during

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
# xxh3-128 of b"abc", from the xxHash reference implementation (xxhsum -H2).
ABC_XXH3_128 = 0x06B05AB6733A618578AF5F94892F3950


def test_sha256_streaming_matches_hashlib() -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    digester = _native.Sha256()
    for i in range(0, len(data), 100_003):
        digester.update(data[i : i + 100_003])
    expected = hashlib.sha256(data).hexdigest()
    assert digester.hexdigest() == expected
    assert digester.digest() == bytes.fromhex(expected)
    assert digester.size == len(data)
    assert digester.finalize() == f"sha256:{expected}"


def test_sha256_accepts_every_buffer_kind() -> None:
    expected = hashlib.sha256(b"abc").hexdigest()
    assert expected == ABC_SHA256
    for buf in (b"abc", bytearray(b"abc"), memoryview(b"xabcx")[1:4]):
        assert _native.Sha256(buf).hexdigest() == expected
    with pytest.raises(TypeError):
        _native.Sha256().update("abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        _native.Sha256().update(memoryview(b"abcdef")[::2])


def test_finalize_ends_the_stream() -> None:
    digester = _native.Sha256(b"abc")
    copy = digester.copy()
    assert digester.finalize() == f"sha256:{ABC_SHA256}"
    for call in (lambda: digester.update(b"x"), digester.hexdigest, digester.finalize):
        with pytest.raises(InvalidArgument, match="already finalized"):
            call()
    copy.update(b"d")
    assert copy.hexdigest() == hashlib.sha256(b"abcd").hexdigest()


def test_sha256_file_and_verify(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 1)
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert _native.sha256_file(blob) == digest
    assert _native.sha256_file(str(blob)) == digest
    assert _native.verify_file(blob, digest) == len(data)
    (tmp_path / "empty").write_bytes(b"")
    assert _native.sha256_file(tmp_path / "empty") == f"sha256:{hashlib.sha256(b'').hexdigest()}"


def test_verify_file_rejects_wrong_and_malformed_digests(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"abc")
    with pytest.raises(DigestMismatch) as info:
        _native.verify_file(blob, "sha256:" + "0" * 64)
    assert f"sha256:{ABC_SHA256}" in str(info.value)
    assert isinstance(info.value, SkiffError) and isinstance(info.value, ValueError)
    for bad in ("", "md5:abc", "sha256:xyz", "sha256:" + ABC_SHA256.upper()):
        with pytest.raises(InvalidArgument):
            _native.verify_file(blob, bad)


def test_io_errors_are_the_matching_oserror(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as info:
        _native.sha256_file(missing)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
    with pytest.raises(IsADirectoryError):
        _native.sha256_file(tmp_path)
    with pytest.raises(FileNotFoundError):
        _native.xxh3_128_file(missing)


def test_xxh3_128_known_vector_and_streaming(tmp_path: Path) -> None:
    assert _native.xxh3_128(b"abc") == ABC_XXH3_128
    assert _native.Xxh3(b"abc").hexdigest() == f"{ABC_XXH3_128:032x}"
    data = os.urandom(1024 * 1024 + 3)
    hasher = _native.Xxh3()
    for i in range(0, len(data), 65_537):
        hasher.update(data[i : i + 65_537])
    assert hasher.intdigest() == _native.xxh3_128(data)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert _native.xxh3_128_file(path) == _native.xxh3_128(data)
    assert _native.xxh3_128(b"abd") != ABC_XXH3_128


def test_long_calls_release_the_gil(tmp_path: Path) -> None:
    """While one thread hashes a large file natively, another keeps running Python."""
    path = tmp_path / "big"
    with path.open("wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(256):
            f.write(chunk)
    _native.sha256_file(path)  # warm the page cache
    during, _ = ticks_during(lambda: _native.sha256_file(path))
    assert during > MIN_TICKS, f"the counter ran only {during} times during the hash"
