from __future__ import annotations

import pytest

from skiff import errors


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (errors.InvalidArgument("x"), 400, 125),
        (errors.DigestMismatch("x"), 400, 125),
        (errors.NotFound("x"), 404, 125),
        (errors.Conflict("x"), 409, 125),
        (errors.Unavailable("x"), 503, 1),
        (errors.SkiffError("x"), 500, 125),
        (RuntimeError("x"), 500, 125),
    ],
)
def test_one_table_maps_status_and_exit_code(exc: BaseException, status: int, code: int) -> None:
    assert errors.http_status(exc) == status
    assert errors.exit_code(exc) == code


def test_from_status_round_trips() -> None:
    for cls in (errors.InvalidArgument, errors.NotFound, errors.Conflict, errors.Unavailable):
        exc = errors.from_status(errors.http_status(cls("m")), "m")
        assert type(exc) is cls
        assert exc.message == "m"
    assert type(errors.from_status(500, "boom")) is errors.SkiffError


def test_tree_is_rooted_and_subclasses_builtins() -> None:
    assert issubclass(errors.DigestMismatch, errors.InvalidArgument)
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    for name in ("InvalidArgument", "NotFound", "Conflict", "Unavailable", "DigestMismatch"):
        assert issubclass(getattr(errors, name), errors.SkiffError)
