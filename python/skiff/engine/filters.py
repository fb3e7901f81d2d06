"""Docker's list filters: the ``filters`` query parameter and how containers match.

The parameter is JSON: ``{"name": ["web"], "label": ["a=b"]}``, or the older map form
``{"name": {"web": true}}`` that docker clients still send; both are accepted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from skiff.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from skiff.engine.container import Container
    from skiff.engine.containers import ContainerService

CONTAINER_FILTERS = frozenset(
    [
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    ]
)

STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def parse_filters(text: str | None, allowed: frozenset[str] | None = None) -> dict[str, list[str]]:
    if not text:
        return {}
    try:
        raw: Any = json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"invalid filter: {err}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filter: not an object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            values = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            values = [str(v) for v in value]
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if allowed is not None and key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out[key] = values
    return out


def label_matches(labels: dict[str, str], wanted: list[str]) -> bool:
    """Every ``key`` or ``key=value`` (``key!=value``) in ``wanted`` holds."""
    for item in wanted:
        if "!=" in item:
            key, _, value = item.partition("!=")
            if labels.get(key) == value:
                return False
            continue
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def container_matches(c: Container, filters: dict[str, list[str]], svc: ContainerService) -> bool:
    for key in filters:
        if key not in CONTAINER_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    f = filters
    if "id" in f and not any(c.id.startswith(v) for v in f["id"]):
        return False
    if "name" in f:
        import re

        if not any(re.search(v.lstrip("/"), c.name) for v in f["name"]):
            return False
    if "status" in f:
        for v in f["status"]:
            if v not in STATUSES:
                raise InvalidArgument(f"invalid filter 'status={v}': Invalid filter 'status={v}'")
        if c.state.status not in f["status"]:
            return False
    if "exited" in f:
        try:
            codes = {int(v) for v in f["exited"]}
        except ValueError:
            raise InvalidArgument("invalid filter 'exited'") from None
        if c.state.status != "exited" or not c.has_been_started or c.state.exit_code not in codes:
            return False
    if "label" in f and not label_matches(c.config.get("Labels") or {}, f["label"]):
        return False
    if "ancestor" in f and not any(_is_ancestor(svc, c, v) for v in f["ancestor"]):
        return False
    if "health" in f:
        health = (c.state.health or {}).get("Status", "none")
        if health not in f["health"]:
            return False
    if "before" in f or "since" in f:
        for key in ("before", "since"):
            for v in f.get(key, []):
                try:
                    other = svc.get(v)
                except NotFound:
                    raise InvalidArgument(f"No such container: {v}") from None
                if key == "before" and not c.created < other.created:
                    return False
                if key == "since" and not c.created > other.created:
                    return False
    if "network" in f:
        mode = c.host_config.get("NetworkMode") or "default"
        name = "bridge" if mode == "default" else mode
        if name not in f["network"]:
            return False
    if "volume" in f:
        dests = {m["Destination"] for m in c.mounts_json()} | {m["Source"] for m in c.mounts_json()}
        if not any(v in dests for v in f["volume"]):
            return False
    return True


def _is_ancestor(svc: ContainerService, c: Container, text: str) -> bool:
    if c.image_name == text or c.image_id == text:
        return True
    try:
        image_id = svc.images.meta.resolve(text)
    except Exception:
        return False
    if image_id == c.image_id:
        return True
    # An image is also the ancestor of containers of images built on it.
    try:
        wanted_chain = svc.images.meta.get_image(image_id).chain
        mine = svc.images.meta.get_image(c.image_id).chain
    except NotFound:
        return False
    return bool(wanted_chain) and list(mine[: len(wanted_chain)]) == list(wanted_chain)
