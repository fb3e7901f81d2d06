"""Image commands: images, pull, push, tag, rmi, save, load, import, history, commit."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC
from typing import IO, Any

import click

from skiff.cli import units
from skiff.cli.app import App, StatusError
from skiff.cli.common import (
    ellipsis,
    filters_arg,
    go_bool_option,
    registry_auth_header,
    save_stream,
    short_id,
    split_ref,
)
from skiff.cli.formatter import Row, render
from skiff.errors import SkiffError


def go_time(unix_seconds: float) -> str:
    """Go's ``time.Unix(s).String()`` in local time: ``2024-01-02 15:04:05 +0100 CET``."""
    t = time.localtime(unix_seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", t) + (t.tm_zone or "")


# ---------------------------------------------------------------------------- images


class ImageRow(Row):
    HEADERS = {
        "Containers": "CONTAINERS",
        "CreatedAt": "CREATED AT",
        "CreatedSince": "CREATED",
        "Digest": "DIGEST",
        "ID": "IMAGE ID",
        "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE",
        "Size": "SIZE",
        "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "SIZE",
    }

    def __init__(self, image: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool):
        self.image = image
        self.Repository = repo
        self.Tag = tag
        self.Digest = digest
        self.trunc = trunc

    @property
    def ID(self) -> str:
        ident = str(self.image.get("Id", ""))
        return short_id(ident) if self.trunc else ident

    @property
    def CreatedSince(self) -> str:
        return units.ago(float(self.image.get("Created") or 0))

    @property
    def CreatedAt(self) -> str:
        return go_time(float(self.image.get("Created") or 0))

    @property
    def Size(self) -> str:
        return units.size(self.image.get("Size") or 0)

    VirtualSize = Size

    @property
    def Containers(self) -> str:
        n = self.image.get("Containers", -1)
        return "N/A" if n is None or n < 0 else str(n)

    @property
    def SharedSize(self) -> str:
        n = self.image.get("SharedSize", -1)
        return "N/A" if n is None or n < 0 else units.size(n)

    @property
    def UniqueSize(self) -> str:
        shared = self.image.get("SharedSize", -1)
        if shared is None or shared < 0:
            return "N/A"
        return units.size((self.image.get("Size") or 0) - shared)


def familiar(name: str) -> str:
    """``docker.io/library/busybox`` -> ``busybox`` (docker's FamiliarName)."""
    if name.startswith("docker.io/"):
        rest = name[len("docker.io/") :]
        short = rest[len("library/") :]
        return short if rest.startswith("library/") and "/" not in short else rest
    return name


def image_rows(images: list[dict[str, Any]], digests: bool, trunc: bool) -> list[ImageRow]:
    rows: list[ImageRow] = []
    for img in images:
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref in img.get("RepoTags") or []:
            if ref == "<none>:<none>":
                continue
            name, tag = split_ref(ref)
            repo_tags.setdefault(familiar(name), []).append(tag)
        for ref in img.get("RepoDigests") or []:
            if ref == "<none>@<none>":
                continue
            name, digest = ref.split("@", 1) if "@" in ref else (ref, "")
            repo_digests.setdefault(familiar(name), []).append(digest)
        mine: list[ImageRow] = []
        for repo, tags in repo_tags.items():
            found = repo_digests.pop(repo, [])
            for tag in tags:
                if not digests or not found:
                    mine.append(ImageRow(img, repo, tag, "<none>", trunc))
                else:
                    mine += [ImageRow(img, repo, tag, d, trunc) for d in found]
        for repo, found in repo_digests.items():
            if digests:
                mine += [ImageRow(img, repo, "<none>", d, trunc) for d in found]
            else:
                mine.append(ImageRow(img, repo, "<none>", "<none>", trunc))
        if not mine:
            mine.append(ImageRow(img, "<none>", "<none>", "<none>", trunc))
        rows += mine
    return rows


@click.command("images")
@click.argument("repository", required=False)
@click.option(
    "-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images)."
)
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option(
    "-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided."
)
@click.option(
    "--format",
    "fmt",
    help="Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE').",
)
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.pass_obj
def images_command(
    app: App,
    repository: str | None,
    all_: bool,
    digests: bool,
    filters: tuple[str, ...],
    fmt: str | None,
    no_trunc: bool,
    quiet: bool,
) -> None:
    """List images."""
    wanted = list(filters)
    if repository:
        wanted.append(f"reference={repository}")
    images = app.client.get("/images/json", all=all_ or None, filters=filters_arg(wanted))
    rows = image_rows(images or [], digests, not no_trunc)
    default = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    if digests:
        default = (
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        )
    sys.stdout.write(render(rows, fmt, default, ImageRow.HEADERS, quiet_field="ID", quiet=quiet))


# ---------------------------------------------------------------------------- pull, push


def pull_image(
    app: App,
    image: str,
    platform: str | None,
    *,
    quiet: bool = False,
    out: IO[str] | None = None,
    all_tags: bool = False,
    say_tag: bool = True,
) -> None:
    """``POST /images/create?fromImage=&tag=`` with the progress shown as docker shows it."""
    from skiff.cli import progress

    out = out if out is not None else sys.stdout
    name, tag = split_ref(image)
    if not tag and not all_tags:
        tag = "latest"
        if not quiet and say_tag:
            out.write("Using default tag: latest\n")
    params = {"fromImage": name, "tag": tag or None, "platform": platform}
    with app.client.stream(
        "POST", "/images/create", params=params, headers=registry_auth_header(name), timeout=None
    ) as stream:
        messages = stream.json_lines()
        if quiet:
            for m in messages:
                progress._check(m)
        else:
            progress.display(messages, out)


@click.command("pull")
@click.argument("name")
@click.option(
    "-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository."
)
@click.option("--platform", help="Set platform if server is multi-platform capable.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.pass_obj
def pull_command(app: App, name: str, all_tags: bool, platform: str | None, quiet: bool) -> None:
    """Download an image from a registry."""
    pull_image(app, name, platform, quiet=quiet, all_tags=all_tags)
    full = name if (":" in name.rsplit("/", 1)[-1] or "@" in name or all_tags) else f"{name}:latest"
    click.echo(_canonical(full))


def _canonical(ref: str) -> str:
    try:
        from skiff.image.reference import split_docker_domain

        domain, rest = split_docker_domain(ref)
        return f"{domain}/{rest}"
    except Exception:
        return ref


@click.command("push")
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.pass_obj
def push_command(app: App, name: str, all_tags: bool, quiet: bool) -> None:
    """Upload an image to a registry."""
    from skiff.cli import progress

    repo, tag = split_ref(name)
    if not tag and not all_tags:
        tag = "latest"
        if not quiet:
            click.echo(f"Using default tag: {tag}")
    from urllib.parse import quote

    with app.client.stream(
        "POST",
        f"/images/{quote(repo, safe='/:')}/push",
        params={"tag": tag or None},
        headers=registry_auth_header(repo),
        timeout=None,
    ) as stream:
        messages = list(stream.json_lines()) if quiet else stream.json_lines()
        if quiet:
            for m in messages:
                progress._check(m)
            click.echo(name if tag or all_tags else f"{name}:latest")
        else:
            progress.display(messages, sys.stdout)


# ---------------------------------------------------------------------------- tag, rmi


@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_obj
def tag_command(app: App, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    repo, tag = split_ref(target)
    app.client.request(
        "POST", f"/images/{source}/tag", params={"repo": repo, "tag": tag or "latest"}
    )


@click.command("rmi")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@click.pass_obj
def rmi_command(app: App, images: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    failed = False
    for image in images:
        try:
            resp = app.client.request(
                "DELETE",
                f"/images/{image}",
                params={"force": force or None, "noprune": no_prune or None},
            )
        except SkiffError as err:
            failed = True
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            continue
        for item in resp.json() or []:
            for key in ("Untagged", "Deleted"):
                if key in item:
                    click.echo(f"{key}: {item[key]}")
    if failed:
        raise StatusError(1)


# ---------------------------------------------------------------------------- save, load, import


@click.command("save")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(), help="Write to a file, instead of STDOUT.")
@click.option("--platform", help="Save only the given platform variant.")
@click.pass_obj
def save_command(
    app: App, images: tuple[str, ...], output: str | None, platform: str | None
) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    params = {"names": tuple(images), "platform": platform}
    save_stream(app, output, "images", "/images/get", params)


def _send_tar(app: App, path: str, params: dict[str, Any], body: Any) -> Iterator[dict[str, Any]]:
    """load and import: ``POST path`` with a tar body; the answer's JSON messages, an
    error message raised."""
    with app.client.stream(
        "POST",
        path,
        params=params,
        body=body,
        timeout=None,
        headers={"Content-Type": "application/x-tar"},
    ) as stream:
        for m in stream.json_lines():
            error = m.get("error") or (m.get("errorDetail") or {}).get("message")
            if error:
                raise SkiffError(error)
            yield m


@click.command("load")
@click.option(
    "-i",
    "--input",
    "input_",
    type=click.Path(exists=True, dir_okay=False),
    help="Read from tar archive file, instead of STDIN.",
)
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.pass_obj
def load_command(app: App, input_: str | None, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN."""
    if input_ is None and sys.stdin.isatty():
        raise click.UsageError("requested load from stdin, but stdin is empty")
    src: IO[bytes] = open(input_, "rb") if input_ else sys.stdin.buffer  # noqa: SIM115
    try:
        for m in _send_tar(app, "/images/load", {"quiet": quiet or None}, src):
            text = m.get("stream") or m.get("status") or ""
            if text and not (quiet and not text.startswith("Loaded")):
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
    finally:
        if input_:
            src.close()


@click.command("import")
@click.argument("source")
@click.argument("repository", required=False)
@click.option(
    "-c", "--change", multiple=True, help="Apply Dockerfile instruction to the created image."
)
@click.option("-m", "--message", help="Set commit message for imported image.")
@click.option("--platform", help="Set platform if server is multi-platform capable.")
@click.pass_obj
def import_command(
    app: App,
    source: str,
    repository: str | None,
    change: tuple[str, ...],
    message: str | None,
    platform: str | None,
) -> None:
    """Import the contents from a tarball (file, - for STDIN, or URL) to create an image."""
    repo, tag = split_ref(repository) if repository else ("", "")
    params: dict[str, Any] = {
        "repo": repo or None,
        "tag": tag or None,
        "message": message,
        "platform": platform,
        "changes": tuple(change) or None,
    }
    body: Any = None
    if source.startswith(("http://", "https://")):
        params["fromSrc"] = source
    else:
        params["fromSrc"] = "-"
        body = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    try:
        for m in _send_tar(app, "/images/create", params, body):
            if m.get("status"):
                click.echo(m["status"])
    finally:
        if body is not None and body is not sys.stdin.buffer:
            body.close()


# ---------------------------------------------------------------------------- history


class HistoryRow(Row):
    HEADERS = {
        "ID": "IMAGE",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY",
        "Size": "SIZE",
        "Comment": "COMMENT",
    }

    def __init__(self, entry: dict[str, Any], trunc: bool, human: bool) -> None:
        self.entry = entry
        self.trunc = trunc
        self.human = human

    @property
    def ID(self) -> str:
        ident = str(self.entry.get("Id") or "")
        if ident in ("", "<missing>"):
            return "<missing>"
        return short_id(ident) if self.trunc else ident

    @property
    def CreatedSince(self) -> str:
        created = float(self.entry.get("Created") or 0)
        if not self.human:
            return self.CreatedAt
        return units.ago(created)

    @property
    def CreatedAt(self) -> str:
        from datetime import datetime

        created = float(self.entry.get("Created") or 0)
        text = datetime.fromtimestamp(created, UTC).astimezone().isoformat("T", "seconds")
        return text[:-6] + "Z" if text.endswith("+00:00") else text  # Go's RFC 3339

    @property
    def CreatedBy(self) -> str:
        text = str(self.entry.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    @property
    def Size(self) -> str:
        n = int(self.entry.get("Size") or 0)
        return units.size(n) if self.human else str(n)

    @property
    def Comment(self) -> str:
        return str(self.entry.get("Comment") or "")


@click.command("history")
@click.argument("image")
@click.option("--format", "fmt", help="Format output using a custom template.")
@click.option(
    "-H",
    "--human",
    default="true",
    show_default=True,
    metavar="BOOL",
    help="Print sizes and dates in human readable format (-H=false for raw).",
)
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--platform", help="Show history for the given platform.")
@click.pass_obj
def history_command(
    app: App,
    image: str,
    fmt: str | None,
    human: str | bool,
    no_trunc: bool,
    quiet: bool,
    platform: str | None,
) -> None:
    """Show the history of an image."""
    human_flag = str(human).lstrip("=").lower()  # pflag's -H=false arrives as "=false"
    if human_flag not in ("1", "0", "t", "f", "true", "false"):
        raise click.BadParameter(f"invalid boolean {human!r}", param_hint="-H")
    human = human_flag in ("1", "t", "true")
    entries = app.client.get(f"/images/{image}/history", platform=platform)
    rows = [HistoryRow(e, not no_trunc, human) for e in entries or []]
    since = "{{.CreatedSince}}" if human else "{{.CreatedAt}}"
    default = f"table {{{{.ID}}}}\t{since}\t{{{{.CreatedBy}}}}\t{{{{.Size}}}}\t{{{{.Comment}}}}"
    sys.stdout.write(render(rows, fmt, default, HistoryRow.HEADERS, quiet_field="ID", quiet=quiet))


# ---------------------------------------------------------------------------- commit


@click.command("commit")
@click.argument("container")
@click.argument("repository", required=False)
@click.option("-a", "--author", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option(
    "-c", "--change", multiple=True, help="Apply Dockerfile instruction to the created image."
)
@click.option("-m", "--message", help="Commit message.")
@go_bool_option("-p", "--pause", default=True, help="Pause container during commit.")
@click.pass_obj
def commit_command(
    app: App,
    container: str,
    repository: str | None,
    author: str | None,
    change: tuple[str, ...],
    message: str | None,
    pause: bool,
) -> None:
    """Create a new image from a container's changes."""
    repo, tag = split_ref(repository) if repository else ("", "")
    answer = app.client.post(
        "/commit",
        {},
        container=container,
        repo=repo or None,
        tag=tag or None,
        comment=message,
        author=author,
        pause=pause,
        changes=tuple(change) or None,
    )
    click.echo(answer["Id"])


def image_prune(app: App, all_: bool, filters: tuple[str, ...]) -> dict[str, Any]:
    wanted = [*filters, f"dangling={'false' if all_ else 'true'}"]
    result: dict[str, Any] = app.client.post("/images/prune", filters=filters_arg(wanted))
    return result
