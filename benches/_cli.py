"""Entry behind ``benches/run``: list benchmarks or run one and print its result line.

A benchmark is any ``benches/<name>.py`` except ``harness.py``, ``conftest.py``, files
starting with ``_`` or ``test_``. Its module docstring's first line is its description,
and it defines ``main(args: list[str]) -> dict`` returning ``harness.result(...)``; this
entry prints that record as the final JSON line.
"""

from __future__ import annotations

import ast
import importlib
import signal
import sys
from pathlib import Path
from types import FrameType

import harness

HERE = Path(__file__).resolve().parent
NOT_BENCHES = {"harness", "conftest"}


def discover() -> dict[str, str]:
    """Benchmark name -> one-line description, without importing the modules."""
    found: dict[str, str] = {}
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        if name in NOT_BENCHES or name.startswith(("_", "test_")):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
        # Benchmarks are named with dashes (runtime-start); modules use underscores.
        found[name.replace("_", "-")] = (
            doc.strip().splitlines()[0] if doc.strip() else "(no description)"
        )
    return found


def _usage(benches: dict[str, str]) -> str:
    lines = ["usage: benches/run NAME [ARGS...] | --list | NAME --help", "benchmarks:"]
    lines += [f"  {name:<15} {desc}" for name, desc in benches.items()]
    return "\n".join(lines)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    benches = discover()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(benches))
        return 0 if argv else 2
    if argv[0] == "--list":
        for name, desc in benches.items():
            print(f"{name:<15} {desc}")
        return 0
    name, args = argv[0], argv[1:]
    if name not in benches:
        print(f"unknown benchmark {name!r}\n{_usage(benches)}", file=sys.stderr)
        return 2
    # ^C and SIGTERM unwind through the benchmarks' finally blocks (even when started
    # in the background, where SIGINT would otherwise be ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    module = importlib.import_module(name.replace("-", "_"))
    print(f"== {name}: {benches[name]}", flush=True)
    try:
        rec = module.main(args)
    except harness.BenchError as e:
        print(f"benchmark {name} aborted: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"benchmark {name} interrupted", file=sys.stderr)
        return 130
    harness.emit(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
