"""The progress display: plain lines for pipes, a live view on terminals."""

from __future__ import annotations

import io

import pytest

from skiff.cli.progress import ProgressError, display, line_for

STREAM = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "id": "aaaaaaaaaaaa"},
    {
        "status": "Downloading",
        "id": "aaaaaaaaaaaa",
        "progressDetail": {"current": 500, "total": 1000},
    },
    {
        "status": "Downloading",
        "id": "aaaaaaaaaaaa",
        "progressDetail": {"current": 1000, "total": 1000},
    },
    {"status": "Download complete", "id": "aaaaaaaaaaaa"},
    {"status": "Pull complete", "id": "aaaaaaaaaaaa"},
    {"status": "Digest: sha256:" + "1" * 64},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]


def test_plain_lines_for_pipes() -> None:
    out = io.StringIO()
    display(STREAM, out, tty=False)
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/busybox",
        "aaaaaaaaaaaa: Pulling fs layer",
        "aaaaaaaaaaaa: Downloading",
        "aaaaaaaaaaaa: Download complete",
        "aaaaaaaaaaaa: Pull complete",
        "Digest: sha256:" + "1" * 64,
        "Status: Downloaded newer image for busybox:latest",
    ]


def test_bars_like_docker() -> None:
    text = line_for(
        {"status": "Downloading", "id": "x", "progressDetail": {"current": 500, "total": 1000}}
    )
    assert text.startswith("x: Downloading [=========================>")
    assert text.endswith("500B/1kB")


def test_terminal_view_ends_with_every_layer_done() -> None:
    out = io.StringIO()
    display(STREAM, out, tty=True)
    shown = out.getvalue()
    assert "aaaaaaaaaaaa: Pull complete" in shown
    assert "Status: Downloaded newer image for busybox:latest" in shown


def test_an_error_in_the_stream_raises() -> None:
    with pytest.raises(ProgressError, match="manifest unknown"):
        display(
            [
                *STREAM[:2],
                {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"},
            ],
            io.StringIO(),
            tty=False,
        )
