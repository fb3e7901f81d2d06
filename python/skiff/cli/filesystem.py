"""A container's filesystem: ``cp`` (both ways, or a tar on stdin/stdout with ``-``),
``diff`` and ``export``.

``cp`` follows docker's rules: copying to an existing directory puts the source inside
it; to a missing path (whose parent exists) creates it under that name; ``SRC/.``
copies a directory's contents. Archives written locally are checked: no entry may
leave the destination (absolute names, ``..``, links pointing out)."""

from __future__ import annotations

import base64
import json
import os
import sys
import tarfile
import threading
from typing import IO, Any

import click

from skiff.cli.app import App
from skiff.cli.common import output_file, save_stream
from skiff.errors import InvalidArgument, NotFound

STAT_HEADER = "x-docker-container-path-stat"


def _split(arg: str) -> tuple[str | None, str]:
    """``container:path`` -> (container, path); a local path -> (None, path)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    name, colon, path = arg.partition(":")
    if colon and name and "/" not in name:
        return name, path
    return None, arg


@click.command("cp")
@click.argument("source")
@click.argument("dest")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy.")
@click.pass_obj
def cp_command(
    app: App, source: str, dest: str, archive: bool, follow_link: bool, quiet: bool
) -> None:
    """Copy files/folders between a container and the local filesystem.

    Use '-' as the source to read a tar archive from stdin and extract it to a
    directory destination in a container. Use '-' as the destination to stream a tar
    archive of a container source to stdout."""
    src_c, src_path = _split(source)
    dst_c, dst_path = _split(dest)
    if src_c and dst_c:
        raise InvalidArgument("copying between containers is not supported")
    if not src_c and not dst_c:
        raise InvalidArgument("must specify at least one container source")
    if src_c:
        n = copy_from(app, src_c, src_path, dst_path, follow_link)
        where = dst_path
    else:
        assert dst_c is not None
        n = copy_to(app, src_path, dst_c, dst_path, archive, follow_link)
        where = f"{dst_c}:{dst_path}"
    if not quiet and dst_path != "-" and n is not None:
        from skiff.cli import units

        sys.stderr.write(f"Successfully copied {units.size(n)} to {where}\n")


def _stat(headers: dict[str, str]) -> dict[str, Any]:
    raw = headers.get(STAT_HEADER)
    if not raw:
        return {}
    try:
        stat: dict[str, Any] = json.loads(base64.b64decode(raw))
        return stat
    except ValueError:
        return {}


def copy_from(app: App, container: str, path: str, dest: str, follow: bool) -> int | None:
    if not path:
        raise InvalidArgument("the container path is empty: use CONTAINER:PATH")
    stream = app.client.stream(
        "GET", f"/containers/{container}/archive", params={"path": path}, timeout=None
    )
    with stream:
        if dest == "-":
            out = output_file(None, "the archive")
            for chunk in stream.chunks():
                out.write(chunk)
            out.flush()
            return None
        stat = _stat(stream.headers)
        src_name = stat.get("name") or os.path.basename(path.rstrip("/")) or "/"
        contents_only = path.endswith("/.")
        if os.path.isdir(dest):
            target_dir, rename = dest, None
            if contents_only:
                rename = ""
        else:
            if dest.endswith("/") or dest.endswith("/."):
                raise InvalidArgument(f"destination directory {dest!r} does not exist")
            parent = os.path.dirname(os.path.abspath(dest))
            if not os.path.isdir(parent):
                raise InvalidArgument(f"the destination's parent directory {parent} does not exist")
            target_dir, rename = parent, os.path.basename(dest)
        return _extract(stream, target_dir, src_name, rename)


class _Reader:
    """A file object over a stream's chunks (what tarfile's streaming mode reads)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.stream.read_exact(n if n >= 0 else 1 << 30)
        self.count += len(data)
        return data


def _inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def _relative(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return "" if name in (".", "./") else name.rstrip("/")


def _mapped(name: str, src_name: str, rename: str | None) -> str:
    """Where an archive entry goes: its root renamed to ``rename`` (docker cp's rules)."""
    if src_name in ("", "."):  # the archive holds a directory's contents
        base = rename or ""
        return os.path.join(base, name) if name else base
    first, _, rest = name.partition("/")
    if rename is not None and first == src_name:
        return os.path.join(rename, rest) if rename and rest else (rename or rest)
    return name


def _extract(stream: Any, target: str, src_name: str, rename: str | None) -> int:
    reader = _Reader(stream)
    total = 0
    with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            name = _mapped(_relative(member.name), src_name.strip("/"), rename)
            if not name:
                continue
            if name.startswith("/") or ".." in name.split("/"):
                raise InvalidArgument(f"refusing to write {member.name!r} outside {target}")
            full = os.path.join(target, name)
            if not _inside(target, os.path.dirname(full)):
                raise InvalidArgument(f"refusing to write {member.name!r} outside {target}")
            if member.islnk():
                link = os.path.join(target, _relative(member.linkname))
                if not _inside(target, link):
                    raise InvalidArgument(f"refusing hard link {member.name!r} out of {target}")
            member.name = name
            if member.isfile():
                total += member.size
            if member.isdir() and os.path.isdir(full):
                continue
            if os.path.lexists(full) and not member.isdir() and not os.path.isdir(full):
                os.unlink(full)
            tar.extract(member, target, set_attrs=True, numeric_owner=os.geteuid() == 0)
    return total


def copy_to(
    app: App, src: str, container: str, dest: str, archive: bool, follow: bool
) -> int | None:
    if not dest:
        raise InvalidArgument("the container path is empty: use CONTAINER:PATH")
    params: dict[str, Any] = {"noOverwriteDirNonDir": True, "copyUIDGID": archive or None}
    if src == "-":
        params["path"] = dest
        app.client.request(
            "PUT", f"/containers/{container}/archive", params=params, body=sys.stdin.buffer
        )
        return None
    if not os.path.lexists(src):
        raise InvalidArgument(f"could not find the file {src} in the local filesystem")
    src_is_dir = os.path.isdir(src)
    contents_only = src.endswith("/.")
    try:
        resp = app.client.request("HEAD", f"/containers/{container}/archive", params={"path": dest})
        stat = _stat(resp.headers)
        dest_is_dir = bool(int(stat.get("mode", 0)) & (1 << 31))
        exists = True
    except NotFound:
        exists, dest_is_dir = False, False
    if exists and dest_is_dir:
        put_dir, name = dest, ("" if contents_only else os.path.basename(os.path.normpath(src)))
    else:
        if exists and src_is_dir:
            raise InvalidArgument(f"cannot copy a directory to the file {container}:{dest}")
        if dest.endswith("/"):
            raise InvalidArgument(f"destination directory {container}:{dest} does not exist")
        put_dir, name = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(dest.rstrip("/"))
    counter = [0]
    params["path"] = put_dir
    body = _tar_stream(src, name, follow, counter)
    app.client.request("PUT", f"/containers/{container}/archive", params=params, body=body)
    return counter[0]


def _tar_stream(src: str, name: str, follow: bool, counter: list[int]) -> IO[bytes]:
    """A pipe carrying a tar of ``src`` (its root named ``name``), written by a thread."""
    r, w = os.pipe()
    error: list[BaseException] = []

    def write() -> None:
        try:
            with (
                os.fdopen(w, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", dereference=follow) as tar,
            ):

                def add(path: str, arcname: str) -> None:
                    info = tar.gettarinfo(path, arcname or ".")
                    if info.isfile():
                        counter[0] += info.size
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
                    if info.isdir():
                        for entry in sorted(os.listdir(path)):
                            add(
                                os.path.join(path, entry),
                                os.path.join(arcname, entry) if arcname else entry,
                            )

                add(src, name)
        except BaseException as err:
            error.append(err)

    threading.Thread(target=write, daemon=True).start()
    return os.fdopen(r, "rb")


#: The API's change kinds as docker diff prints them.
CHANGE_KINDS = {0: "C", 1: "A", 2: "D"}


@click.command("diff")
@click.argument("container")
@click.pass_obj
def diff_command(app: App, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    for change in app.client.get(f"/containers/{container}/changes") or []:
        click.echo(f"{CHANGE_KINDS.get(change.get('Kind'), '?')} {change.get('Path')}")


@click.command("export")
@click.argument("container")
@click.option("-o", "--output", type=click.Path(), help="Write to a file, instead of STDOUT.")
@click.pass_obj
def export_command(app: App, container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar archive."""
    save_stream(app, output, "the filesystem", f"/containers/{container}/export")
