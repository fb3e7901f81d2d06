"""In-process hash figures with pytest-benchmark (not part of the normal test run).

Run: ``.venv/bin/python -m pytest benches/test_hash_inprocess.py --benchmark-only``.
Every benchmark hashes the same 256 MiB of fresh random data, read from the page cache.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
import skiff._native as native
from harness import MiB

SIZE = 256 * MiB
PEDANTIC = {"rounds": 5, "warmup_rounds": 1, "iterations": 1}


@pytest.fixture(scope="module")
def data_file() -> Iterator[Path]:
    """256 MiB from /dev/urandom in a fresh directory, read once so it is in page cache."""
    with harness.workdir("skiff-bench-pytest") as tmp:
        path = harness.random_file(tmp / "input.bin", SIZE)
        harness.warm_cache(path)
        yield path


@pytest.fixture(scope="module")
def data_bytes(data_file: Path) -> bytes:
    return data_file.read_bytes()


@pytest.fixture(scope="module")
def expected_sha256(data_file: Path) -> str:
    return hashlib_sha256_file(data_file)


def hashlib_sha256_file(path: Path, chunk: int = MiB) -> str:
    """sha256 with the standard library, reading 1 MiB at a time."""
    h = hashlib.sha256()
    view = memoryview(bytearray(chunk))
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()


def run(benchmark: Any, fn: Callable[[], object], gb: bool = False) -> object:
    """Time ``fn`` and record its median throughput in extra_info."""
    out = benchmark.pedantic(fn, **PEDANTIC)
    median = benchmark.stats.stats.median
    if gb:
        benchmark.extra_info["GBps"] = round(harness.throughput(SIZE, median, 1e9), 3)
    else:
        benchmark.extra_info["MBps"] = round(harness.throughput(SIZE, median, 1e6), 1)
    return out


def test_sha256_file_native(benchmark: Any, data_file: Path, expected_sha256: str) -> None:
    assert run(benchmark, functools.partial(native.sha256_file, str(data_file))) == (
        expected_sha256
    )


def test_sha256_hashlib(benchmark: Any, data_file: Path, expected_sha256: str) -> None:
    assert run(benchmark, functools.partial(hashlib_sha256_file, data_file)) == expected_sha256


def test_xxh3_128_file_native(benchmark: Any, data_file: Path, data_bytes: bytes) -> None:
    got = run(benchmark, functools.partial(native.xxh3_128_file, str(data_file)), gb=True)
    assert got == native.xxh3_128(data_bytes)


def test_xxh3_128_memory_native(benchmark: Any, data_bytes: bytes) -> None:
    got = run(benchmark, functools.partial(native.xxh3_128, data_bytes), gb=True)
    assert isinstance(got, int)
