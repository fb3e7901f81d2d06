"""Small pieces every command uses: filters as the API takes them, short IDs, output
that refuses a terminal, registry credentials for X-Registry-Auth."""

from __future__ import annotations

import sys

from skiff.errors import InvalidArgument

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import IO, Any, TypeVar

    from skiff.cli.app import App

    F = TypeVar("F", bound=Callable[..., Any])


def filters_arg(items: Iterable[str]) -> str | None:
    """``--filter key=value`` flags as the API's JSON (``{"key": {"value": true}}``)."""
    out: dict[str, dict[str, bool]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item!r}")
        out.setdefault(key.strip().lower(), {})[value] = True
    if not out:
        return None
    from skiff.client.fastjson import dumps

    return dumps(out)


def short_id(ident: str) -> str:
    """docker's TruncateID: no ``sha256:``, 12 characters."""
    return ident.partition(":")[2][:12] if ":" in ident else ident[:12]


def ellipsis(text: str, width: int) -> str:
    """docker's Ellipsis: ``text`` cut to ``width`` characters, the last one ``…``."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…" if width > 1 else text[:width]


def output_file(path: str | None, what: str) -> IO[bytes]:
    """``-o FILE`` or stdout, refusing to write a tar to a terminal (docker's words)."""
    if path:
        return open(path, "wb")
    if sys.stdout.isatty():
        raise InvalidArgument(
            f"cowardly refusing to save {what} to a terminal. Use the -o flag or redirect"
        )
    return sys.stdout.buffer


def save_stream(
    app: App, output: str | None, what: str, path: str, params: dict[str, Any] | None = None
) -> None:
    """save and export: ``GET path`` (a tar), written to ``-o output`` or stdout."""
    out = output_file(output, what)
    try:
        with app.client.stream("GET", path, params=params, timeout=None) as stream:
            for chunk in stream.chunks():
                out.write(chunk)
        out.flush()
    finally:
        if output:
            out.close()


def registry_auth_header(image: str) -> dict[str, str]:
    """X-Registry-Auth for ``image``'s registry from config.json (docker sends ``{}``
    when there are no credentials)."""
    import base64
    import json

    auth: dict[str, Any] = {}
    try:
        from skiff.image.reference import split_docker_domain
        from skiff.registry.auth import load_credentials

        domain, _ = split_docker_domain(image.partition("@")[0])
        creds = load_credentials(domain)
    except Exception:  # unreadable config: pull anonymously, the daemon says the rest
        creds = None
        domain = ""
    if creds is not None:
        if creds.identity_token:
            auth = {"identitytoken": creds.identity_token, "serveraddress": domain}
        else:
            auth = {"username": creds.username, "password": creds.password, "serveraddress": domain}
    encoded = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
    return {"X-Registry-Auth": encoded}


def split_ref(image: str) -> tuple[str, str]:
    """``name[:tag][@digest]`` -> (name, tag or digest) as ``fromImage``/``tag`` take it."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, ""


def go_bool_option(*decls: str, default: bool, help: str) -> Callable[[F], F]:
    """A boolean flag that also takes pflag's ``--flag=false`` (``--pause=false``,
    ``--sig-proxy=false``); alone it means true."""
    import click

    def convert(_ctx: Any, _param: Any, value: Any) -> bool:
        text = str(value).lstrip("=").lower()
        if text in ("1", "t", "true"):
            return True
        if text in ("0", "f", "false"):
            return False
        raise click.BadParameter(f"invalid boolean value {value!r}: use true or false")

    option: Callable[[F], F] = click.option(
        *decls,
        is_flag=False,
        flag_value="true",
        default="true" if default else "false",
        show_default=True,
        metavar="BOOL",
        callback=convert,
        help=help,
    )
    return option
