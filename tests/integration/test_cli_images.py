"""The skiff CLI's image commands against a real skiffd (and a real registry for pull
and push), compared with the docker CLI where output matters."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration.test_cli_containers import SKIFF, columns, container, ok, skiff, uname
from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, docker_ok

pytestmark = pytest.mark.root


def _rows(text: str) -> list[list[str]]:
    return [columns(line) for line in text.splitlines()]


def assert_same_table(
    ours: list[str], theirs: list[str], args: tuple[str, ...], *, ordered: bool
) -> None:
    """The same table from skiff and docker. CREATED ("N seconds ago") may tick
    between the two commands (past "About a minute ago", say, which also changes
    the padding): with the same cells the lines must match exactly, else all but
    that column must."""
    assert columns(ours[0]) == columns(theirs[0]), args

    def rows(lines: list[str], drop: int | None = None) -> list[list[str]]:
        cells = [[c for i, c in enumerate(columns(ln)) if i != drop] for ln in lines[1:]]
        return cells if ordered else sorted(cells)

    if rows(ours) == rows(theirs):
        assert ours[0] == theirs[0], args
    else:
        drop = columns(ours[0]).index("CREATED")
        assert rows(ours, drop) == rows(theirs, drop), args


def test_images_flags(engine: RunningDaemon) -> None:
    repo = uname("img")
    ok(engine, "tag", "busybox", f"{repo}:one")
    ok(engine, "tag", "busybox:latest", f"{repo}:two")
    try:
        busybox_id = ok(engine, "inspect", "-f", "{{.Id}}", "busybox").strip()
        rows = _rows(ok(engine, "images", repo))
        assert rows[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        assert sorted(r[:3] for r in rows[1:]) == [
            [repo, "one", busybox_id[7:19]],
            [repo, "two", busybox_id[7:19]],
        ]
        assert re.fullmatch(r"[\d.]+[kM]B", rows[1][-1]) and rows[1][3].endswith("ago")
        assert ok(engine, "images", "-q", repo).split() == [busybox_id[7:19]] * 2
        assert set(ok(engine, "images", "-q", "--no-trunc", repo).split()) == {busybox_id}
        assert _rows(ok(engine, "images", "--digests", repo))[0][2] == "DIGEST"
        out = ok(
            engine,
            "images",
            "--filter",
            f"reference={repo}:one",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        )
        assert out == f"{repo}:one {busybox_id[7:19]}\n"
        item = json.loads(ok(engine, "images", "--format", "json", f"{repo}:one"))
        assert (item["Repository"], item["Tag"], item["ID"]) == (repo, "one", busybox_id[7:19])
        table = ok(engine, "images", "--format", "table {{.Repository}}\t{{.Tag}}", f"{repo}:two")
        assert table.splitlines()[0].split() == ["REPOSITORY", "TAG"]
        r = skiff(engine, "rmi", f"{repo}:one", f"{repo}:nope")
        assert r.code == 1 and r.out == f"Untagged: {repo}:one\n"
        assert "No such image" in r.err
    finally:
        skiff(engine, "rmi", f"{repo}:one", f"{repo}:two")
    assert ok(engine, "images", "-q", repo) == ""


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_images_and_inspect_like_docker(engine: RunningDaemon) -> None:
    repo = uname("cmp")
    ok(engine, "tag", "busybox", f"{repo}:a")
    ok(engine, "tag", "probe", f"{repo}:b")
    try:
        for args in (
            ("images", repo),
            ("images", "-a", repo),
            ("images", "--digests", repo),
            ("images", "--no-trunc", repo),
        ):
            ours, theirs = ok(engine, *args).splitlines(), docker_ok(engine, *args).splitlines()
            assert_same_table(ours, theirs, args, ordered=False)
        for args in (
            ("images", "-q", repo),
            ("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}} {{.Digest}}", repo),
            ("images", "--format", "table {{.ID}}\t{{.Repository}}", repo),
        ):
            assert sorted(ok(engine, *args).splitlines()) == sorted(
                docker_ok(engine, *args).splitlines()
            ), args
        for fmt in (
            "{{.Id}}",
            "{{.RepoTags}}",
            "{{json .RepoTags}}",
            "{{.Size}} {{.Os}} {{.Architecture}}",
            "{{json .Config}}",
            "{{.Config.Cmd}} {{.Config.Entrypoint}}",
            "{{range .RootFS.Layers}}{{.}} {{end}}",
        ):
            ours = ok(engine, "inspect", "-f", fmt, f"{repo}:a")
            assert ours == docker_ok(engine, "inspect", "-f", fmt, f"{repo}:a"), fmt
            assert ok(engine, "inspect", "--type", "image", "-f", fmt, f"{repo}:a") == ours
        assert json.loads(ok(engine, "inspect", f"{repo}:b")) == json.loads(
            docker_ok(engine, "inspect", f"{repo}:b")
        )
        for args in (
            ("history", "busybox"),
            ("history", "--no-trunc", "busybox"),
            ("history", "-H=false", "busybox"),
        ):
            ours, theirs = ok(engine, *args).splitlines(), docker_ok(engine, *args).splitlines()
            assert_same_table(ours, theirs, args, ordered=True)
    finally:
        skiff(engine, "rmi", f"{repo}:a", f"{repo}:b")


def test_history(engine: RunningDaemon) -> None:
    out = ok(engine, "history", "busybox").splitlines()
    assert columns(out[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    image_id = ok(engine, "inspect", "-f", "{{.Id}}", "busybox").strip()
    assert ok(engine, "history", "-q", "busybox").split()[0] == image_id[7:19]
    assert ok(engine, "history", "-q", "--no-trunc", "busybox").split()[0] == image_id
    raw = columns(ok(engine, "history", "-H=false", "busybox").splitlines()[1])
    assert raw[1].endswith("Z") or "+" in raw[1]  # RFC 3339, not "ago"
    assert re.fullmatch(r"\d+", raw[3])
    assert ok(engine, "history", "--format", "{{.ID}}|{{.Size}}", "busybox").startswith(
        image_id[7:19] + "|"
    )


def test_commit_save_load_import(engine: RunningDaemon, tmp_path: Path) -> None:
    repo = uname("cmt")
    with container(engine, "busybox", "sh", "-c", "echo committed > /made; sleep 300") as name:
        deadline_ok = False
        for _ in range(100):
            if skiff(engine, "exec", name, "cat", "/made").out == "committed\n":
                deadline_ok = True
                break
        assert deadline_ok
        image_id = ok(engine, "commit", "-m", "a message", "-a", "Someone <s@example.org>",
                      "-c", "ENV COMMITTED=yes", "-c", 'CMD ["cat", "/made"]', name, f"{repo}:c").strip()  # fmt: skip
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
        ok(engine, "commit", "--pause=false", name, f"{repo}:nopause")
    try:
        assert ok(engine, "run", "--rm", f"{repo}:c") == "committed\n"
        fmt = "{{.Comment}}|{{.Author}}|{{json .Config.Env}}"
        comment, author, env = ok(engine, "inspect", "-f", fmt, f"{repo}:c").strip().split("|")
        assert (comment, author) == ("a message", "Someone <s@example.org>")
        assert "COMMITTED=yes" in json.loads(env)
        history = ok(engine, "history", f"{repo}:c").splitlines()
        assert "a message" in history[1]
        # save to a file and to stdout; load from a file (-i) and from stdin
        ok(engine, "save", "-o", str(tmp_path / "img.tar"), f"{repo}:c")
        with tarfile.open(tmp_path / "img.tar") as tar:
            assert "manifest.json" in tar.getnames()
        proc = subprocess.run(
            [*SKIFF, "save", f"{repo}:c"], capture_output=True, env=engine.env(), timeout=60
        )
        assert proc.returncode == 0 and proc.stdout[:2] != b""
        ok(engine, "rmi", f"{repo}:c")
        assert ok(engine, "load", "-i", str(tmp_path / "img.tar")) == f"Loaded image: {repo}:c\n"
        ok(engine, "rmi", f"{repo}:c")
        assert ok(engine, "load", "-q", input=proc.stdout) == f"Loaded image: {repo}:c\n"
        assert ok(engine, "run", "--rm", f"{repo}:c") == "committed\n"
        # import a root filesystem: from a file and from stdin, with -c and -m
        ok(engine, "create", "--name", f"{repo}-exp", f"{repo}:c")
        try:
            ok(engine, "export", "-o", str(tmp_path / "fs.tar"), f"{repo}-exp")
        finally:
            ok(engine, "rm", f"{repo}-exp")
        imported = ok(
            engine,
            "import",
            "-m",
            "from a file",
            "-c",
            "ENV IMPORTED=1",
            str(tmp_path / "fs.tar"),
            f"{repo}:imp",
        ).strip()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", imported)
        assert (
            ok(engine, "run", "--rm", f"{repo}:imp", "sh", "-c", "cat /made; echo $IMPORTED")
            == "committed\n1\n"
        )
        assert (
            ok(engine, "history", "--format", "{{.Comment}}", f"{repo}:imp").splitlines()[0]
            == "from a file"
        )
        piped = ok(
            engine, "import", "-", f"{repo}:piped", input=(tmp_path / "fs.tar").read_bytes()
        ).strip()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", piped)
    finally:
        skiff(engine, "rmi", "-f", f"{repo}:c", f"{repo}:nopause", f"{repo}:imp", f"{repo}:piped")
    r = skiff(engine, "save", f"{repo}:nope", "-o", str(tmp_path / "x.tar"))
    assert r.code != 0 and r.err.count("\n") == 1


def test_pull_and_push(engine: RunningDaemon, registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ref = f"{host}/cli/busybox:1"
    ok(engine, "tag", "busybox", ref)
    try:
        out = ok(engine, "push", ref)
        assert "Pushed" in out or "Layer already exists" in out
        assert re.search(r"1: digest: sha256:[0-9a-f]{64} size: \d+", out)
        ok(engine, "rmi", ref)
        r = skiff(engine, "pull", ref)
        assert r.code == 0, r.err
        assert "Pull complete" in r.out or "Already exists" in r.out
        assert r.out.rstrip().endswith(ref)
        assert "Status: Downloaded newer image for" in r.out
        assert ok(engine, "run", "--rm", ref, "echo", "pulled") == "pulled\n"
        digests = ok(
            engine, "images", "--digests", "--format", "{{.Digest}}", f"{host}/cli/busybox"
        )
        assert digests.startswith("sha256:")
        ok(engine, "rmi", ref)
        # run pulls what is missing, quietly with -q
        r = skiff(engine, "run", "--rm", "-q", ref, "echo", "ran")
        assert (r.code, r.out) == (0, "ran\n")
        ok(engine, "rmi", ref)
        r = skiff(engine, "run", "--rm", ref, "echo", "ran")
        assert r.out == "ran\n" and f"Unable to find image '{ref}' locally" in r.err
        r = skiff(engine, "pull", "-q", f"{host}/cli/nothing:here")
        assert r.code == 1 or r.code == 125
        assert len(r.err.strip().splitlines()) == 1
    finally:
        skiff(engine, "rmi", "-f", ref)


def test_load_refuses_garbage(engine: RunningDaemon) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info, io.BytesIO(b""))
    r = skiff(engine, "load", input=buf.getvalue())
    assert r.code != 0 and r.err.count("\n") == 1
