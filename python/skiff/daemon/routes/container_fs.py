"""Container filesystem routes: ``GET /containers/{id}/changes`` (docker diff),
``GET /containers/{id}/export``, and ``GET``/``HEAD``/``PUT /containers/{id}/archive``
(docker cp) with dockerd's ``X-Docker-Container-Path-Stat`` header. The work is in
:mod:`skiff.engine.archive`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skiff.daemon.http import Request, Response, StreamResponse, json_response
from skiff.engine.archive import ArchiveService
from skiff.engine.tarout import encode_stat

if TYPE_CHECKING:
    from skiff.daemon.app import RouteSpec
    from skiff.daemon.state import Daemon

TAR = "application/x-tar"
STAT_HEADER = "X-Docker-Container-Path-Stat"


def bool_value(request: Request, name: str) -> bool:
    """dockerd's httputils.BoolValue: anything but "", 0, no, false and none."""
    value = (request.arg(name) or "").strip().lower()
    return value not in ("", "0", "no", "false", "none")


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (dockerd compresses archives then)."""
    if not header:
        return False
    best: dict[str, float] = {}
    for item in header.split(","):
        token, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best[token.strip().lower()] = q
    q = best.get("gzip", best.get("x-gzip", best.get("*", 0.0)))
    return q > 0


def routes(daemon: Daemon) -> list[RouteSpec]:
    svc = ArchiveService(daemon.containers, daemon.exec_root)

    async def changes(request: Request) -> Response:
        return json_response(await svc.changes(request.params["id"]))

    async def export(request: Request) -> StreamResponse:
        return StreamResponse(await svc.export(request.params["id"]), content_type=TAR)

    async def archive(request: Request) -> Response | StreamResponse:
        ref, path = request.params["id"], request.arg("path") or ""
        if request.method == "HEAD":
            entry = await svc.stat(ref, path)
            return Response(200, headers={STAT_HEADER: encode_stat(entry)})
        compress = accepts_gzip(request.headers.get("accept-encoding"))
        entry, chunks = await svc.get(ref, path, compress=compress)
        headers = {STAT_HEADER: encode_stat(entry)}
        if compress:
            headers["Content-Encoding"] = "gzip"
        return StreamResponse(chunks, content_type=TAR, headers=headers)

    async def put_archive(request: Request) -> Response:
        ref, path = request.params["id"], request.arg("path") or ""
        # dockerd: replacing a directory by a file (and the reverse) is allowed unless
        # noOverwriteDirNonDir is given and true (the docker CLI always sends it).
        allow = "noOverwriteDirNonDir" not in request.query or not bool_value(
            request, "noOverwriteDirNonDir"
        )
        await svc.put(
            ref,
            path,
            request.body.chunks(),
            allow_overwrite_dir_with_file=allow,
            copy_uid_gid=bool_value(request, "copyUIDGID"),
        )
        return Response(200)

    return [
        ("GET", "/containers/{id}/changes", changes),
        ("GET", "/containers/{id}/export", export),
        ("GET", "/containers/{id}/archive", archive),
        ("PUT", "/containers/{id}/archive", put_archive),
    ]
