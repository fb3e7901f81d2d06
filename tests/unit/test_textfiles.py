from __future__ import annotations

import os
from pathlib import Path

from skiff.engine import textfiles
from skiff.engine.containers import _merge_config
from skiff.image import manifest as mf


def test_rewrite_replaces_the_content_in_place(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    textfiles.rewrite(path, b"a longer first text")
    assert path.read_bytes() == b"a longer first text"
    inode = path.stat().st_ino
    textfiles.rewrite(path, b"short")
    assert path.read_bytes() == b"short"
    # The same file (a bind mount of it sees the new text).
    assert path.stat().st_ino == inode
    textfiles.rewrite(path, b"")
    assert path.read_bytes() == b""


def test_a_host_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    host = textfiles.HostFile(str(path))
    assert host.read() == ""  # missing
    path.write_text("nameserver 10.0.0.1\n")
    assert host.read() == "nameserver 10.0.0.1\n"
    path.write_text("nameserver 10.0.0.2\n")  # the same size
    os.utime(path, ns=(1, 1))  # and a time of its own
    assert host.read() == "nameserver 10.0.0.2\n"
    replacement = tmp_path / "new"
    replacement.write_text("nameserver 10.0.0.3\n")
    os.utime(replacement, ns=(1, 1))
    os.rename(replacement, path)  # another inode, the same size and time
    assert host.read() == "nameserver 10.0.0.3\n"
    path.unlink()
    assert host.read() == ""


def test_a_container_config_shares_nothing_with_the_image_defaults() -> None:
    image = mf.ContainerConfig(
        entrypoint=["/entry"],
        cmd=["run", "it"],
        volumes={"/data": {}},
        exposed_ports={"80/tcp": {}},
        healthcheck=mf.HealthConfig(test=["CMD", "true"]),
    )
    cfg = _merge_config({"Image": "x"}, image)
    cfg["Entrypoint"].append("changed")
    cfg["Cmd"].append("changed")
    cfg["Volumes"]["/data"]["changed"] = 1
    cfg["ExposedPorts"]["80/tcp"]["changed"] = 1
    cfg["Healthcheck"]["Test"].append("changed")
    assert image.entrypoint == ["/entry"] and image.cmd == ["run", "it"]
    assert image.volumes == {"/data": {}} and image.exposed_ports == {"80/tcp": {}}
    assert image.healthcheck is not None and image.healthcheck.test == ["CMD", "true"]
    only_cmd = _merge_config({"Image": "x", "Entrypoint": []}, image)
    only_cmd["Cmd"].append("changed")
    assert image.cmd == ["run", "it"]
