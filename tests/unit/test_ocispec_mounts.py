"""The order of a container's own mounts in its config.json: a mount lands inside one
at a shallower destination, whatever the spelling of the paths."""

from __future__ import annotations

from pathlib import Path

from skiff.engine import ocispec
from skiff.engine.container import Container


def test_shallower_destinations_come_first_once_cleaned(tmp_path: Path) -> None:
    binds = ["/tmp/a:/x/y", "/tmp/b:/q/../x", "/tmp/c:/./x/y/z/"]
    c = Container(
        id="c" * 64,
        name="mounts",
        created="",
        image_id="",
        config={},
        host_config={"Binds": binds, "NetworkMode": "none"},
        path="true",
        args=[],
        root=tmp_path,
    )
    spec = ocispec.build(c, volumes_root=tmp_path / "volumes")
    wanted = {b.split(":")[1] for b in binds}
    ours = [m["destination"] for m in spec["mounts"] if m["destination"] in wanted]
    assert ours == ["/q/../x", "/x/y", "/./x/y/z/"]
