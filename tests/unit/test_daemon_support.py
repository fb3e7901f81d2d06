"""The test daemons' configuration: none uses the host's default cgroup parent."""

from __future__ import annotations

import json

from tests.support.daemon import CGROUP_PARENT, with_cgroup_parent


def test_a_test_daemon_gets_the_sessions_cgroup_parent_unless_its_config_names_one() -> None:
    assert json.loads(with_cgroup_parent("{}")) == {"cgroup-parent": CGROUP_PARENT}
    got = json.loads(with_cgroup_parent('{"debug": true}'))
    assert got == {"cgroup-parent": CGROUP_PARENT, "debug": True}
    named = '{"cgroup-parent": "/elsewhere"}'
    assert with_cgroup_parent(named) == named
    # What a test of a refusal writes stays as written.
    for text in ("{oops", "[1]", ""):
        assert with_cgroup_parent(text) == text
