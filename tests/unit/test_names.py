"""skiff.engine.names: validation in dockerd's words, and generated names
("brave_lovelace") that avoid the names taken."""

from __future__ import annotations

import pytest

from skiff.engine import names
from skiff.errors import InvalidArgument


def test_generated_names_are_valid_and_not_taken() -> None:
    seen = {names.generate(set()) for _ in range(200)}
    assert len(seen) > 50  # drawn, not fixed
    for name in seen:
        left, _, right = name.partition("_")
        assert left in names._LEFT and right in names._RIGHT
        assert names.validate(name) == name
    taken = set(seen)
    assert names.generate(taken) not in taken


def test_when_every_pair_is_taken_a_number_is_added() -> None:
    every = {f"{a}_{b}" for a in names._LEFT for b in names._RIGHT}
    name = names.generate(every)
    assert name not in every
    assert name.rstrip("0123456789") in every


def test_invalid_names_are_refused_as_dockerd_refuses_them() -> None:
    assert names.validate("/web-1") == "web-1"
    with pytest.raises(InvalidArgument, match=r"Invalid container name \(a b\)"):
        names.validate("a b")
