"""Shared test harness.

- ``@pytest.mark.root``: the test needs root (real namespaces, mounts, cgroups); it is
  skipped for other users.
- Image fixtures built without network: ``busybox_tar``, ``probe`` (the static probe
  binary) and ``probe_tar``.
- ``skiffd`` (one real daemon for the session) and ``daemon_factory`` (fresh daemons a
  test starts and stops itself).
- A leak check: the session snapshots mounts, network namespaces, links, cgroups and
  processes at its start and fails the run if its end shows any new ones.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import images, leaks
from tests.support.bundles import BundleFactory
from tests.support.daemon import CGROUP_PARENT, RunningDaemon, start_daemon

if TYPE_CHECKING:
    from skiff.runtime.driver import Runtime

_BEFORE: leaks.Snapshot | None = None

# A CLI run that forgets its daemon's address must fail, not start a skiffd on the
# host's default socket that outlives the tests (the embedded daemon's own test
# takes this out of its environment).
os.environ["SKIFF_NO_EMBEDDED_DAEMON"] = "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    global _BEFORE
    _BEFORE = leaks.Snapshot.take()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _BEFORE is None or os.environ.get("SKIFF_LEAKCHECK") == "0":
        return
    found = leaks.leaks(_BEFORE, leaks.Snapshot.take())
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "LEAK CHECK FAILED: " + leaks.describe(found)
        if reporter is not None:
            reporter.write_line(text, red=True, bold=True)
        else:
            print(text)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def short_tmpdir(prefix: str) -> Path:
    """A temporary directory with a short path (unix socket paths must fit 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def artifacts() -> Iterator[Path]:
    path = short_tmpdir("skiff-art-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_tar(artifacts: Path) -> Path:
    """A busybox root filesystem tar (Debian's busybox-static, applet links, passwd)."""
    return images.build_busybox_tar(artifacts / "busybox.tar")


@pytest.fixture(scope="session")
def probe() -> Path:
    """The static probe binary: run in a container, it prints what it sees as JSON."""
    return images.build_probe()


@pytest.fixture(scope="session")
def probe_tar(artifacts: Path, probe: Path) -> Path:
    """A root filesystem holding only the probe, at /probe."""
    return images.build_probe_tar(artifacts / "probe.tar", probe)


@pytest.fixture(scope="session")
def runtime() -> Iterator[Runtime]:
    """skiff-runtime with a state root of its own for this session."""
    from skiff.runtime.driver import Runtime
    from tests.support.cgroups import remove_tree

    root = short_tmpdir("skiff-rt-")
    rt = Runtime(root=str(root))
    yield rt
    for c in rt.containers():
        rt.delete(c["id"], force=True)
    shutil.rmtree(root, ignore_errors=True)
    remove_tree(CGROUP_PARENT)


@pytest.fixture
def bundle(runtime: Runtime) -> Iterator[BundleFactory]:
    """Makes bundles (``bundle(tar, args, edit=fn, **config)``); deletes their
    containers and directories afterwards."""
    base = short_tmpdir("skiff-b-")
    factory = BundleFactory(runtime, base, CGROUP_PARENT)
    yield factory
    factory.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon_factory() -> Iterator[Callable[..., RunningDaemon]]:
    """Starts fresh daemons (``factory(*flags, config="{}")``); stops them all at the end."""
    started: list[tuple[RunningDaemon, Path]] = []

    def factory(*flags: str, config: str = "{}") -> RunningDaemon:
        root = short_tmpdir("skiffd-")
        try:
            daemon = start_daemon(root, *flags, config=config)
        except BaseException:
            # A daemon that would not start (a test of a refusal) leaves nothing.
            shutil.rmtree(root, ignore_errors=True)
            raise
        started.append((daemon, root))
        return daemon

    yield factory
    from tests.support.cgroups import remove_tree

    for daemon, root in started:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
    remove_tree(CGROUP_PARENT)  # what is left empty there (spare cgroups' parent)


@pytest.fixture(scope="session")
def skiffd() -> Iterator[RunningDaemon]:
    """One daemon shared by the session's tests that only read from it."""
    root = short_tmpdir("skiffd-")
    daemon = start_daemon(root)
    yield daemon
    code = daemon.stop()
    shutil.rmtree(root, ignore_errors=True)
    from tests.support.cgroups import remove_tree

    remove_tree(CGROUP_PARENT)
    assert code == 0, f"skiffd exited with {code}"


@pytest.fixture(scope="session")
def engine(busybox_tar: Path, probe_tar: Path) -> Iterator[RunningDaemon]:
    """One skiffd for the session's container tests, with ``busybox:latest`` and
    ``probe:latest``; its containers run under the session's cgroup parent. Tests
    name their containers uniquely and remove them."""
    from tests.support.cgroups import remove_tree
    from tests.support.engine import reap, start_engine

    root = short_tmpdir("skiffd-e-")
    daemon = start_engine(root, {"busybox:latest": busybox_tar, "probe:latest": probe_tar})
    yield daemon
    code = daemon.stop()
    left = reap(root, CGROUP_PARENT)
    shutil.rmtree(root, ignore_errors=True)
    remove_tree(CGROUP_PARENT)
    assert code == 0, f"skiffd exited with {code}:\n{daemon.log()}"
    assert not left, f"the stopped skiffd left (now removed): {left}"


@pytest.fixture
def engine_factory(busybox_tar: Path, probe_tar: Path) -> Iterator[Callable[..., RunningDaemon]]:
    """Fresh daemons with the test images (``factory(config={...})``) for tests that
    restart or kill them; stopped and removed afterwards."""
    from tests.support.cgroups import remove_tree
    from tests.support.engine import reap, start_engine

    started: list[tuple[RunningDaemon, Path]] = []

    def factory(
        config: dict[str, object] | None = None, pass_fds: tuple[int, ...] = ()
    ) -> RunningDaemon:
        root = short_tmpdir("skiffd-f-")
        daemon = start_engine(
            root,
            {"busybox:latest": busybox_tar, "probe:latest": probe_tar},
            config,
            pass_fds,
        )
        started.append((daemon, root))
        return daemon

    yield factory
    left = []
    for daemon, root in started:
        daemon.stop()
        left += reap(root, CGROUP_PARENT)
        shutil.rmtree(root, ignore_errors=True)
    remove_tree(CGROUP_PARENT)
    # A daemon that stops leaves none of its containers behind.
    assert not left, f"a stopped skiffd left (now removed): {left}"


@pytest.fixture
def registry() -> Iterator[object]:
    """A real registry (Debian's docker-registry) on 127.0.0.1, no auth; stopped and
    its storage removed afterwards."""
    from tests.support.registry import start_registry

    reg = start_registry(short_tmpdir("skiff-reg-"))
    yield reg
    reg.stop()


@pytest.fixture
def registry_auth() -> Iterator[object]:
    """Like ``registry``, behind htpasswd basic auth (``reg.user`` / ``reg.password``)."""
    from tests.support.registry import start_registry

    reg = start_registry(short_tmpdir("skiff-reg-"), user="skiff", password="s3cret-pw")
    yield reg
    reg.stop()
