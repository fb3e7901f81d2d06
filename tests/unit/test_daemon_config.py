from __future__ import annotations

import json
from pathlib import Path

import pytest

from skiff.daemon.config import DaemonConfig, load
from skiff.errors import InvalidArgument


def test_defaults_from_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("")
    config = load(str(path), {})
    assert config == DaemonConfig()
    assert config.data_root == "/var/lib/skiff"
    assert config.exec_root == "/run/skiff"
    assert config.hosts == ["unix:///run/skiff/skiff.sock"]


def test_file_and_flags_merge(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"data-root": "/srv/skiff", "debug": True}))
    config = load(str(path), {"exec_root": "/run/other"})
    assert (config.data_root, config.exec_root, config.debug) == ("/srv/skiff", "/run/other", True)


def test_same_setting_in_flag_and_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"data-root": "/srv/skiff"}))
    with pytest.raises(
        InvalidArgument, match="both as a flag and in the configuration file: data-root"
    ):
        load(str(path), {"data_root": "/other"})


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"no-such-key": 1}', "don't match any configuration option: no-such-key"),
        ("{not json", "unable to configure"),
        ("[1]", "not a JSON object"),
        ('{"data-root": "relative"}', "absolute path"),
        ('{"hosts": ["tcp://0.0.0.0:2375"]}', "TLS"),
        ('{"log-level": "loud"}', "invalid log level"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(content)
    with pytest.raises(InvalidArgument, match=match):
        load(str(path), {})


def test_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        load(str(tmp_path / "missing.json"), {})
