"""Skiff's one exception tree, and the one table from error to HTTP status and exit code.

Where an error happens decides its kind (the class); nothing downstream matches on
message text. The native module raises these same classes (``rust/py/src/errors.rs``),
and I/O errors as the built-in ``OSError`` subclasses.
"""

from __future__ import annotations


class SkiffError(Exception):
    """Root of every error Skiff raises on purpose."""

    #: Set by the API client on errors the daemon answered with.
    from_daemon: bool = False

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidArgument(SkiffError, ValueError):
    """The request or input is malformed."""


class DigestMismatch(InvalidArgument):
    """Content does not match the digest it was named by."""


class NotFound(SkiffError, LookupError):
    """No such container, image, network, volume, ..."""


class Conflict(SkiffError):
    """The operation conflicts with current state (name in use, container running...)."""


class Unauthorized(SkiffError):
    """Credentials are missing or wrong."""


class Forbidden(SkiffError):
    """The operation is not allowed."""


class NotModified(SkiffError):
    """Nothing to do: already in the requested state."""


class Unavailable(SkiffError):
    """A daemon or service does not answer."""


class NotImplementedYet(SkiffError):
    """The API exists in Docker but Skiff does not serve it yet."""


#: error class -> (HTTP status, CLI exit code). The first class in an exception's MRO
#: found here wins. Exit codes follow docker's: 125 when the engine fails; 1 for the
#: client-side failures docker reports with 1.
_TABLE: dict[type[BaseException], tuple[int, int]] = {
    NotModified: (304, 0),
    DigestMismatch: (400, 125),
    InvalidArgument: (400, 125),
    Unauthorized: (401, 1),
    Forbidden: (403, 125),
    NotFound: (404, 125),
    Conflict: (409, 125),
    NotImplementedYet: (501, 125),
    Unavailable: (503, 1),
    SkiffError: (500, 125),
}

_DEFAULT = (500, 125)

#: HTTP status -> the class a client raises for it.
_BY_STATUS: dict[int, type[SkiffError]] = {
    400: InvalidArgument,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    501: NotImplementedYet,
    503: Unavailable,
}


def _lookup(exc: BaseException) -> tuple[int, int]:
    for cls in type(exc).__mro__:
        if cls in _TABLE:
            return _TABLE[cls]
    return _DEFAULT


def http_status(exc: BaseException) -> int:
    """The status code the daemon answers with for ``exc``."""
    return _lookup(exc)[0]


def exit_code(exc: BaseException) -> int:
    """The exit code the CLI ends with for ``exc``."""
    return _lookup(exc)[1]


def from_status(status: int, message: str) -> SkiffError:
    """The exception a client raises for an error answer from the daemon."""
    return _BY_STATUS.get(status, SkiffError)(message)
