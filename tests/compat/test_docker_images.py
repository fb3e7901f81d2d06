"""The docker CLI and docker-py managing images on skiffd: pull (progress shown) and
push against a real registry, tag, rmi (refused while a container uses the image,
forced with -f), images with filters and formats, inspect, history, save | load,
import from stdin, commit with changes, image and system prune, login to an htpasswd
registry and a private pull, and the image events."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker as dockerpy
import pytest

from skiff.errors import InvalidArgument
from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, DockerResult, docker, docker_ok, uname
from tests.support.registry import Registry

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]


def random_rootfs_tar(path: Path, size: int = 3 << 20) -> Path:
    """A root filesystem tar whose content no other image has (so a pull of it really
    downloads): one random file, plus a directory."""
    with tarfile.open(path, "w") as tar:
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        tar.addfile(d)
        data = os.urandom(size)
        info = tarfile.TarInfo("data/random.bin")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
        marker = path.name.encode()
        info = tarfile.TarInfo("marker.txt")
        info.size = len(marker)
        tar.addfile(info, io.BytesIO(marker))
    return path


def docker_cfg(
    daemon: RunningDaemon, config: Path, *args: str, input: str | None = None
) -> DockerResult:
    """The docker CLI with its own config directory (credentials stay out of ~/.docker)."""
    assert DOCKER is not None
    env = daemon.env()
    env["DOCKER_CONFIG"] = str(config)
    proc = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, env=env, timeout=120, input=input
    )
    return DockerResult(proc.returncode, proc.stdout, proc.stderr)


def image_ids(daemon: RunningDaemon) -> set[str]:
    return set(docker_ok(daemon, "images", "-aq", "--no-trunc").split())


def import_image(daemon: RunningDaemon, tar: Path, ref: str = "", *changes: str) -> str:
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    args += ["-", *([ref] if ref else [])]
    with tar.open("rb") as f:
        proc = subprocess.run(
            [DOCKER or "docker", *args], stdin=f, capture_output=True, env=daemon.env(), timeout=60
        )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().strip()
    assert out.startswith("sha256:"), out
    return out


@pytest.fixture
def dclient(engine: RunningDaemon) -> Iterator[dockerpy.DockerClient]:
    client = dockerpy.DockerClient(base_url=engine.host, version="auto", timeout=120)
    yield client
    client.close()


def test_rmi_right_after_rm_still_frees_the_layers(engine: RunningDaemon) -> None:
    """``DELETE /containers`` answers before the container's files (and its hold on
    the image's layers) are gone; a ``DELETE /images`` right after still frees the
    image's own layer."""
    ref = f"skiff-test/{uname('rmrmi')}:v1"
    base = uname("rmrmi-base")
    docker_ok(engine, "run", "--name", base, "busybox", "sh", "-c", f"echo {ref} > /uniq")
    try:
        docker_ok(engine, "commit", base, ref)
    finally:
        docker(engine, "rm", "-f", base)
    diff_ids = json.loads(docker_ok(engine, "image", "inspect", ref))[0]["RootFS"]["Layers"]
    chain = diff_ids[0]
    for diff_id in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    snapshot = engine.root / "data" / "snapshots" / chain[7:]
    assert snapshot.exists()
    api = dockerpy.APIClient(base_url=engine.host, version="auto", timeout=60)
    try:
        cid = api.create_container(ref, ["sleep", "30"], host_config=api.create_host_config())
        api.start(cid["Id"])
        # Back to back: the removal's clean-up (the root unmounted) is still going.
        api.remove_container(cid["Id"], force=True)
        api.remove_image(ref)
    finally:
        api.close()
    deadline = time.monotonic() + 10
    while snapshot.exists():
        assert time.monotonic() < deadline, "the layer was never collected"
        time.sleep(0.05)


# --------------------------------------------------------------------------- pull/push


def test_push_rmi_pull_round_trip_with_progress(
    engine: RunningDaemon, registry: Registry, tmp_path: Path
) -> None:
    """An image only this test has: pushed, removed (its layer with it), pulled back
    with the download progress shown, and the same ID again."""
    ref = f"{registry.host}/compat/rand:v1"
    image_id = import_image(engine, random_rootfs_tar(tmp_path / "rand.tar"), ref)
    # An imported plain tar is its own layer blob: digest == diff ID == chain ID.
    layer = json.loads(docker_ok(engine, "image", "inspect", ref))[0]["RootFS"]["Layers"][0]
    data = engine.root / "data"
    blob = data / "content" / "blobs" / "sha256" / layer[7:]
    snapshot = data / "snapshots" / layer[7:]
    assert blob.exists() and snapshot.exists()
    try:
        out = docker_ok(engine, "push", ref)
        assert f"The push refers to repository [{registry.host}/compat/rand]" in out
        assert ": Pushed" in out
        assert "v1: digest: sha256:" in out
        digest = out.split("digest: ")[1].split()[0]

        removed = docker_ok(engine, "rmi", ref)
        assert f"Untagged: {ref}" in removed
        assert f"Deleted: {image_id}" in removed
        assert image_id not in image_ids(engine)
        assert not blob.exists() and not snapshot.exists()

        out = docker_ok(engine, "pull", ref)
        lines = out.splitlines()
        assert lines[0] == f"v1: Pulling from {registry.host}/compat/rand"
        for status in ("Pulling fs layer", "Download complete", "Pull complete"):
            assert any(line.endswith(f": {status}") for line in lines), out
        assert f"Digest: {digest}" in lines
        assert f"Status: Downloaded newer image for {ref}" in lines
        assert lines[-1] == ref
        assert docker_ok(engine, "image", "inspect", ref, "--format", "{{.Id}}").strip() == image_id
        digests = docker_ok(engine, "image", "inspect", ref, "--format", "{{json .RepoDigests}}")
        assert json.loads(digests) == [f"{registry.host}/compat/rand@{digest}"]

        # Up to date the second time; by digest too.
        again = docker_ok(engine, "pull", ref)
        assert f"Status: Image is up to date for {ref}" in again
        by_digest = f"{registry.host}/compat/rand@{digest}"
        assert by_digest in docker_ok(engine, "pull", by_digest)
        listed = docker_ok(
            engine, "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"
        )
        assert f"{registry.host}/compat/rand v1 {digest}" in listed
    finally:
        docker(engine, "rmi", "-f", image_id)
    assert image_id not in image_ids(engine)


def test_pull_errors_answer_like_dockerd(engine: RunningDaemon, registry: Registry) -> None:
    missing = docker(engine, "pull", f"{registry.host}/compat/nothing-here:v1")
    assert missing.code == 1
    assert "Error response from daemon: manifest for" in missing.err
    assert "not found: manifest unknown" in missing.err
    # docker run pulls what it does not have, and fails the same way (125).
    run = docker(engine, "run", "--rm", f"{registry.host}/compat/nothing-here:v2", "true")
    assert run.code == 125
    assert "manifest unknown" in run.err
    bad = docker(engine, "pull", "Not/A/Valid:Ref")
    assert bad.code != 0
    assert "invalid reference format" in bad.err
    search = docker(engine, "search", "busybox")
    assert search.code == 1
    assert "searching a registry is not supported" in search.err
    from_url = docker(engine, "import", "http://127.0.0.1:1/rootfs.tar", "compat/from-url")
    assert from_url.code == 1
    assert "importing from a URL" in from_url.err
    push_missing = docker(engine, "push", f"{registry.host}/compat/not-local:v1")
    assert push_missing.code == 1
    assert "An image does not exist locally with the tag" in push_missing.err


def test_login_and_pull_of_a_private_image(
    engine: RunningDaemon, registry_auth: Registry, tmp_path: Path
) -> None:
    reg = registry_auth
    config = tmp_path / "docker-config"
    config.mkdir()
    ref = f"{reg.host}/private/rand:v1"
    wrong = docker_cfg(
        engine, config, "login", reg.host, "-u", reg.user, "--password-stdin", input="nope\n"
    )
    assert wrong.code == 1
    assert "401 Unauthorized" in wrong.err
    image_id = import_image(engine, random_rootfs_tar(tmp_path / "private.tar"), ref)
    try:
        denied = docker_cfg(engine, config, "push", ref)
        assert denied.code == 1
        assert "authentication required" in denied.out + denied.err

        ok = docker_cfg(
            engine,
            config,
            "login",
            reg.host,
            "-u",
            reg.user,
            "--password-stdin",
            input=reg.password + "\n",
        )
        assert ok.code == 0, ok.err
        assert "Login Succeeded" in ok.out
        assert reg.host in json.loads((config / "config.json").read_text())["auths"]

        pushed = docker_cfg(engine, config, "push", ref)
        assert pushed.code == 0, pushed.out + pushed.err
        assert ": Pushed" in pushed.out
        docker_ok(engine, "rmi", ref)

        pulled = docker_cfg(engine, config, "pull", ref)
        assert pulled.code == 0, pulled.err
        assert "Pull complete" in pulled.out
        assert docker_ok(engine, "image", "inspect", ref, "--format", "{{.Id}}").strip() == image_id
        docker_ok(engine, "rmi", ref)

        assert docker_cfg(engine, config, "logout", reg.host).code == 0
        anonymous = docker_cfg(engine, config, "pull", ref)
        assert anonymous.code == 1
        assert "pull access denied for" in anonymous.err
        assert "may require 'docker login'" in anonymous.err
    finally:
        docker(engine, "rmi", "-f", image_id)


# --------------------------------------------------------------------------- listing


def test_tag_images_filters_and_formats(engine: RunningDaemon) -> None:
    repo = uname("list")
    busybox_id = docker_ok(engine, "image", "inspect", "busybox", "--format", "{{.Id}}").strip()
    docker_ok(engine, "tag", "busybox", f"{repo}:one")
    docker_ok(engine, "tag", "busybox:latest", f"{repo}:two")
    docker_ok(engine, "tag", busybox_id[7:19], f"localhost:5999/{repo}/deep:three")
    try:
        table = docker_ok(engine, "images", repo)
        rows = table.splitlines()
        assert rows[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
        assert sorted(r.split()[1] for r in rows[1:]) == ["one", "two"]

        fmt = "{{.Repository}}:{{.Tag}}"
        by_ref = docker_ok(engine, "images", "--filter", f"reference={repo}:*", "--format", fmt)
        assert sorted(by_ref.split()) == [f"{repo}:one", f"{repo}:two"]
        deep = docker_ok(engine, "images", "--filter", f"reference=*/{repo}/*", "--format", fmt)
        assert deep.split() == [f"localhost:5999/{repo}/deep:three"]
        quiet = docker_ok(engine, "images", "-q", "--filter", f"reference={repo}")
        assert set(quiet.split()) == {busybox_id[7:19]}
        assert docker_ok(engine, "images", "--filter", "dangling=true", "-q", repo) == ""
        assert docker_ok(engine, "images", "--filter", "label=nope", "-q", repo) == ""
        listed = json.loads(
            docker_ok(engine, "images", "--format", "{{json .}}", f"{repo}:one").splitlines()[0]
        )
        assert listed["ID"] == busybox_id[7:19]
        assert listed["Tag"] == "one"

        # An image with labels, and before/since by creation time.
        labelled = docker_ok(
            engine,
            "commit",
            "--change",
            "LABEL colour=blue",
            create_container(engine, "busybox", f"{repo}-ctr"),
            f"{repo}:labelled",
        ).strip()
        assert docker_ok(
            engine, "images", "-q", "--no-trunc", "--filter", "label=colour=blue"
        ).split() == [labelled]
        since = docker_ok(engine, "images", "--filter", f"since={repo}:one", "--format", fmt, repo)
        assert since.split() == [f"{repo}:labelled"]
        before = docker_ok(
            engine, "images", "--filter", f"before={repo}:labelled", "--format", fmt, repo
        )
        assert sorted(before.split()) == [f"{repo}:one", f"{repo}:two"]

        bad = docker(engine, "images", "--filter", "nonsense=1")
        assert bad.code != 0 and "invalid filter" in bad.err
    finally:
        docker(engine, "rm", "-f", f"{repo}-ctr")
        for tag in (f"{repo}:one", f"{repo}:two", f"localhost:5999/{repo}/deep:three"):
            docker(engine, "rmi", tag)
        docker(engine, "rmi", f"{repo}:labelled")
    assert docker_ok(engine, "images", "-q", repo) == ""
    assert busybox_id in image_ids(engine)


def create_container(engine: RunningDaemon, image: str, name: str = "") -> str:
    """A created (never started) container; named ``<something>-ctr`` by callers."""
    return docker_ok(engine, "create", "--name", name or uname("c"), image, "true").strip()


def test_inspect_history_and_paths_with_ports(engine: RunningDaemon) -> None:
    info = json.loads(docker_ok(engine, "image", "inspect", "busybox"))[0]
    assert info["Id"].startswith("sha256:")
    assert "busybox:latest" in info["RepoTags"]
    assert info["RootFS"]["Type"] == "layers" and info["RootFS"]["Layers"]
    assert info["Os"] == "linux" and info["Size"] > 0
    ref = f"127.0.0.1:5000/{uname('a')}/b:tag"
    docker_ok(engine, "tag", "busybox", ref)
    try:
        # GET /images/127.0.0.1:5000/a/b:tag/json: a name with a port and slashes.
        assert (
            docker_ok(engine, "image", "inspect", ref, "--format", "{{.Id}}").strip() == info["Id"]
        )
        history = docker_ok(engine, "history", "--no-trunc", ref)
        lines = history.splitlines()
        assert lines[0].split()[:2] == ["IMAGE", "CREATED"]
        assert lines[1].startswith(info["Id"])
        formatted = docker_ok(engine, "history", "--format", "{{.CreatedBy}}|{{.Comment}}", ref)
        assert formatted.strip().endswith("|Imported from tarball")
    finally:
        docker_ok(engine, "rmi", ref)
    missing = docker(engine, "image", "inspect", "no-such-image-" + secrets.token_hex(3))
    assert missing.code == 1
    assert "No such image" in missing.err


# --------------------------------------------------------------------------- rmi


def test_rmi_refused_while_in_use_then_forced(engine: RunningDaemon, tmp_path: Path) -> None:
    repo = uname("inuse")
    image_id = import_image(engine, random_rootfs_tar(tmp_path / "inuse.tar", 1024), f"{repo}:v1")
    short = image_id[7:19]
    cid = create_container(engine, f"{repo}:v1")
    try:
        by_ref = docker(engine, "rmi", f"{repo}:v1")
        assert by_ref.code == 1
        assert (
            f'conflict: unable to remove repository reference "{repo}:v1" (must force)'
            f" - container {cid[:12]} is using its referenced image {short}" in by_ref.err
        )
        by_id = docker(engine, "rmi", short)
        assert by_id.code == 1
        assert (
            f"conflict: unable to delete {short} (must be forced) - image is being used by"
            f" stopped container {cid[:12]}" in by_id.err
        )
        assert docker_ok(engine, "images", "-q", repo).strip() == short  # nothing changed

        forced = docker_ok(engine, "rmi", "-f", f"{repo}:v1")
        assert f"Untagged: {repo}:v1" in forced
        assert f"Deleted: {image_id}" in forced
        assert image_id not in image_ids(engine)
    finally:
        docker(engine, "rm", "-f", cid)
        docker(engine, "rmi", "-f", image_id)

    # The image of a running container cannot be deleted, even forced.
    docker_ok(engine, "tag", "busybox", f"{repo}:shell")
    name = uname("running")
    try:
        running = docker_ok(
            engine,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            f"{repo}:shell",
            "sleep",
            "300",
        ).strip()
        busybox_id = docker_busybox_id(engine)
        hard = docker(engine, "rmi", "-f", busybox_id[7:19])
        assert hard.code == 1
        assert (
            f"conflict: unable to delete {busybox_id[7:19]} (cannot be forced) - image is being"
            f" used by running container {running[:12]}" in hard.err
        )
        # By a name that is not the last one: just untagged.
        assert docker_ok(engine, "rmi", f"{repo}:shell").strip() == f"Untagged: {repo}:shell"
    finally:
        docker(engine, "rm", "-f", name)
        docker(engine, "rmi", f"{repo}:shell")
    assert busybox_id in image_ids(engine)


def docker_busybox_id(engine: RunningDaemon) -> str:
    return docker_ok(engine, "image", "inspect", "busybox", "--format", "{{.Id}}").strip()


# --------------------------------------------------------------------------- save/load/import


def test_save_load_round_trip_keeps_ids(engine: RunningDaemon, tmp_path: Path) -> None:
    repo = uname("saved")
    image_id = import_image(engine, random_rootfs_tar(tmp_path / "s.tar", 256 << 10), f"{repo}:v1")
    archive = tmp_path / "saved.tar"
    try:
        docker_ok(engine, "save", "-o", str(archive), f"{repo}:v1")
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert {"manifest.json", "index.json", "oci-layout"} <= names
        assert manifest[0]["RepoTags"] == [f"{repo}:v1"]
        assert manifest[0]["Config"] == f"blobs/sha256/{image_id[7:]}"
        docker_ok(engine, "rmi", f"{repo}:v1")
        assert image_id not in image_ids(engine)

        loaded = docker_ok(engine, "load", "-i", str(archive))
        assert f"Loaded image: {repo}:v1" in loaded
        assert docker_ok(
            engine, "image", "inspect", f"{repo}:v1", "--format", "{{.Id}}"
        ).strip() == (image_id)
        # Through pipes: docker save | docker load, by ID this time.
        assert DOCKER is not None
        save = subprocess.Popen(
            [DOCKER, "save", image_id], stdout=subprocess.PIPE, env=engine.env()
        )
        load = subprocess.run(
            [DOCKER, "load"], stdin=save.stdout, capture_output=True, text=True, env=engine.env()
        )
        assert save.wait(30) == 0
        assert load.returncode == 0, load.stderr
        assert f"Loaded image ID: {image_id}" in load.stdout
        bad = docker(engine, "load", input="this is not a tar")
        assert bad.code == 1
        assert "not an image archive" in bad.err
        missing = docker(engine, "save", "-o", str(tmp_path / "none.tar"), "no-such-image:v9")
        assert missing.code == 1 and "No such image" in missing.err
    finally:
        docker(engine, "rmi", "-f", image_id)


def test_import_from_stdin_with_changes(engine: RunningDaemon, busybox_tar: Path) -> None:
    repo = uname("imported")
    image_id = import_image(
        engine,
        busybox_tar,
        f"{repo}:v1",
        'ENV GREETING="hello from import"',
        'CMD ["sh", "-c", "echo $GREETING in $(pwd)"]',
        "WORKDIR /tmp",
        "LABEL origin=stdin",
    )
    try:
        out = docker_ok(engine, "run", "--rm", "--network", "none", f"{repo}:v1")
        assert out == "hello from import in /tmp\n"
        info = json.loads(docker_ok(engine, "image", "inspect", f"{repo}:v1"))[0]
        assert info["Id"] == image_id
        assert info["Config"]["Labels"] == {"origin": "stdin"}
        assert info["Config"]["WorkingDir"] == "/tmp"
        bad = subprocess.run(
            [DOCKER or "docker", "import", "--change", "RUN true", "-", f"{repo}:bad"],
            input=b"",
            capture_output=True,
            env=engine.env(),
        )
        assert bad.returncode == 1
        assert b"RUN is not a valid change command" in bad.stderr
    finally:
        docker(engine, "rmi", "-f", image_id)


# --------------------------------------------------------------------------- commit


def test_commit_with_changes_and_run_the_result(engine: RunningDaemon) -> None:
    repo = uname("committed")
    name = uname("src")
    docker_ok(
        engine,
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "-e",
        "FROM_RUN=kept",
        "busybox",
        "sh",
        "-c",
        "echo committed-data > /committed.txt; rm /bin/vi; sleep 300",
    )
    try:
        deadline = time.monotonic() + 10
        while docker(engine, "exec", name, "test", "-f", "/committed.txt").code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        image_id = docker_ok(
            engine,
            "commit",
            "--change",
            "ENV COMMITTED=yes",
            "--change",
            'CMD ["cat", "/committed.txt"]',
            "-m",
            "a commit message",
            "-a",
            "Skiff Tests <t@example.com>",
            name,
            f"{repo}:v1",
        ).strip()
        assert image_id.startswith("sha256:")
        # Paused for the commit, running again afterwards.
        assert docker_ok(engine, "inspect", name, "--format", "{{.State.Status}}").strip() == (
            "running"
        )
        assert docker_ok(engine, "run", "--rm", "--network", "none", f"{repo}:v1") == (
            "committed-data\n"
        )
        env = docker_ok(
            engine,
            "run",
            "--rm",
            "--network",
            "none",
            f"{repo}:v1",
            "sh",
            "-c",
            "echo $COMMITTED $FROM_RUN; test -e /bin/vi || echo vi-gone",
        )
        assert env == "yes kept\nvi-gone\n"
        info = json.loads(docker_ok(engine, "image", "inspect", f"{repo}:v1"))[0]
        assert info["Config"]["Cmd"] == ["cat", "/committed.txt"]
        assert info["Author"] == "Skiff Tests <t@example.com>"
        assert info["Parent"] == docker_busybox_id(engine)
        assert len(info["RootFS"]["Layers"]) == 2
        history = docker_ok(engine, "history", "--format", "{{.Comment}}", f"{repo}:v1")
        assert history.splitlines()[0] == "a commit message"
        # Without pausing, and without a repository: a dangling image.
        dangling = docker_ok(engine, "commit", "--pause=false", name).strip()
        assert dangling in docker_ok(engine, "images", "-q", "--no-trunc", "-f", "dangling=true")
        docker_ok(engine, "rmi", dangling)
    finally:
        docker(engine, "rm", "-f", name)
        docker(engine, "rmi", f"{repo}:v1")
    assert docker_ok(engine, "images", "-q", repo) == ""


# --------------------------------------------------------------------------- prune


def test_image_prune_and_system_prune(
    engine_factory: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    daemon = engine_factory()
    dangling = import_image(daemon, random_rootfs_tar(tmp_path / "d.tar", 1024))
    tagged = import_image(daemon, random_rootfs_tar(tmp_path / "t.tar", 1024), "keep:v1")
    assert docker_ok(daemon, "images", "-q", "--no-trunc", "-f", "dangling=true").split() == [
        dangling
    ]
    out = docker_ok(daemon, "image", "prune", "-f")
    assert "Deleted Images:" in out
    assert f"deleted: {dangling}" in out
    assert "Total reclaimed space:" in out
    ids = image_ids(daemon)
    assert dangling not in ids and tagged in ids

    # -a: everything no container uses (busybox is kept by a container).
    cid = create_container(daemon, "busybox")
    out = docker_ok(daemon, "image", "prune", "-a", "-f")
    assert f"deleted: {tagged}" in out
    assert "untagged: probe:latest" in out
    left = docker_ok(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert left == ["busybox:latest"]

    docker_ok(daemon, "rm", cid)
    out = docker_ok(daemon, "system", "prune", "-a", "-f")
    assert "Total reclaimed space:" in out
    assert docker_ok(daemon, "images", "-aq") == ""
    data = daemon.root / "data"
    assert not any((data / "content" / "blobs" / "sha256").iterdir())
    assert not [p for p in (data / "snapshots").iterdir() if not p.name.startswith(".")]


# --------------------------------------------------------------------------- events


def test_image_events(engine: RunningDaemon, tmp_path: Path) -> None:
    repo = uname("events")
    start = time.time()
    image_id = import_image(engine, random_rootfs_tar(tmp_path / "e.tar", 1024), f"{repo}:v1")
    docker_ok(engine, "tag", f"{repo}:v1", f"{repo}:v2")
    docker_ok(engine, "rmi", f"{repo}:v2")
    docker_ok(engine, "rmi", f"{repo}:v1")
    out = docker_ok(
        engine,
        "events",
        "--since",
        f"{start:.3f}",
        "--until",
        f"{time.time():.3f}",
        "--filter",
        "type=image",
        "--format",
        '{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "name"}}',
    )
    lines = [line for line in out.splitlines() if image_id in line]
    actions = [line.split()[0] for line in lines]
    assert actions == ["import", "tag", "tag", "untag", "untag", "delete"], out
    assert f"tag {image_id} {repo}:v2" in lines


# --------------------------------------------------------------------------- docker-py


def test_docker_py_pull_push_get_load_commit(
    engine: RunningDaemon, registry: Registry, dclient: dockerpy.DockerClient, tmp_path: Path
) -> None:
    repo = f"{registry.host}/py/rand"
    image_id = import_image(engine, random_rootfs_tar(tmp_path / "py.tar", 512 << 10), f"{repo}:v1")
    created: list[str] = [image_id]
    names = [uname("py"), uname("py"), uname("py")]
    try:
        pushed = dclient.images.push(repo, tag="v1", stream=True, decode=True)
        messages = list(pushed)
        aux = [m["aux"] for m in messages if "aux" in m]
        assert aux and aux[0]["Tag"] == "v1" and aux[0]["Digest"].startswith("sha256:")
        assert not [m for m in messages if "error" in m]
        dclient.images.remove(f"{repo}:v1")

        image = dclient.images.pull(repo, tag="v1")
        assert image.id == image_id
        assert f"{repo}:v1" in image.tags
        assert dclient.images.get(f"{repo}:v1").id == image_id

        data = b"".join(image.save(named=True))
        dclient.images.remove(f"{repo}:v1", force=True)
        loaded = dclient.images.load(data)
        assert [i.id for i in loaded] == [image_id]

        container = dclient.containers.run(
            "busybox",
            ["sh", "-c", "echo py > /py.txt; sleep 300"],
            name=names[0],
            detach=True,
            network_mode="none",
        )
        deadline = time.monotonic() + 10
        while container.exec_run(["test", "-f", "/py.txt"]).exit_code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        committed = container.commit(
            repository=f"{repo}-committed",
            tag="v1",
            message="from docker-py",
            changes=["ENV PY=1", 'CMD ["cat", "/py.txt"]'],
            conf={"Labels": {"made-by": "docker-py"}},
        )
        created.append(committed.id)
        assert committed.labels == {"made-by": "docker-py"}
        out = dclient.containers.run(
            f"{repo}-committed:v1", name=names[1], remove=True, network_mode="none"
        )
        assert out == b"py\n"
        env = dclient.containers.run(
            f"{repo}-committed:v1",
            ["sh", "-c", "echo $PY"],
            name=names[2],
            remove=True,
            network_mode="none",
        )
        assert env == b"1\n"
    finally:
        for name in names:
            docker(engine, "rm", "-f", name)
        for one in reversed(created):
            with contextlib.suppress(dockerpy.errors.ImageNotFound):
                dclient.images.remove(one, force=True)
    assert not set(created) & image_ids(engine)


# --------------------------------------------------------------------------- helpers


def test_changes_apply_like_the_builder() -> None:
    from skiff.engine.images import apply_changes

    base = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv"}
    cfg = apply_changes(
        base,
        [
            'ENV A=2 B="two words"\nENV C three words',
            "ENTRYPOINT /entry --flag",
            "WORKDIR app",
            "EXPOSE 80 53/udp 8000-8001",
            'HEALTHCHECK --interval=1m30s --retries=2 CMD ["check", "-q"]',
            'VOLUME ["/data"]',
            "LABEL a=b \\\n  c=d",
            "# a comment",
            "USER nobody",
            "STOPSIGNAL SIGINT",
        ],
    )
    assert cfg["Env"] == ["PATH=/bin", "A=2", "B=two words", "C=three words"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/entry --flag"]
    assert cfg["Cmd"] is None  # an ENTRYPOINT resets a CMD not set alongside it
    assert cfg["WorkingDir"] == "/srv/app"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}
    assert cfg["Healthcheck"] == {
        "Interval": 90_000_000_000,
        "Retries": 2,
        "Test": ["CMD", "check", "-q"],
    }
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["Labels"] == {"a": "b", "c": "d"}
    assert (cfg["User"], cfg["StopSignal"]) == ("nobody", "SIGINT")
    assert base["Cmd"] == ["sh"]  # the input is not changed
    both = apply_changes({}, ['CMD ["x"]', 'ENTRYPOINT ["e"]'])
    assert (both["Entrypoint"], both["Cmd"]) == (["e"], ["x"])
    for bad, message in (
        ("FROM busybox", "FROM is not a valid change command"),
        ("BOGUS x", "unknown instruction: BOGUS"),
        ("ENV a=1 b", 'can\'t find = in "b"'),
        ("EXPOSE 80/xyz", "invalid proto"),
    ):
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            apply_changes({}, [bad])


def test_registry_auth_header_and_reference_patterns() -> None:
    import base64

    from skiff.engine.images import credentials_entry, decode_registry_auth, reference_match
    from skiff.image.reference import parse_normalized, parse_normalized_named

    raw = json.dumps({"username": "u", "password": "p?>", "serveraddress": "h:5000"}).encode()
    for encoded in (
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(raw).decode(),
    ):
        auth = decode_registry_auth(encoded)
        assert credentials_entry(auth) == {"username": "u", "password": "p?>"}
    token = base64.urlsafe_b64encode(b'{"identitytoken": "tok"}').decode()
    assert credentials_entry(decode_registry_auth(token)) == {"identitytoken": "tok"}
    assert decode_registry_auth("e30=") == {}
    assert decode_registry_auth("not base64 json!") == {}
    assert credentials_entry({}) is None

    ref = parse_normalized("busybox:1.36")
    assert reference_match("busybox", ref)  # the name alone
    assert reference_match("busy*:1.*", ref)
    assert not reference_match("*/busybox", ref)
    deep = parse_normalized("localhost:5000/team/app:v1")
    assert reference_match("localhost:5000/*/app", deep)
    assert not reference_match("localhost:5000/*", deep)  # * stops at /
    assert reference_match("localhost:5000/team/ap[op]:v?", deep)
    digest = parse_normalized_named("busybox@sha256:" + "a" * 64)
    assert reference_match("busybox", digest)
