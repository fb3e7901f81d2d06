"""Pure logic of the benchmark harness (benches/harness.py): stats, ratio, result line."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

HARNESS_PATH = Path(__file__).resolve().parents[2] / "benches" / "harness.py"


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_harness", HARNESS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


h = _load_harness()


def test_stats_min_median_max() -> None:
    st = h.Stats((3.0, 1.0, 2.0))
    assert (st.min, st.median, st.max, st.n) == (1.0, 2.0, 3.0, 3)
    assert h.Stats((4.0, 1.0, 2.0, 3.0)).median == 2.5


def test_stats_from_ns_and_empty() -> None:
    assert h.Stats.from_ns([1_500_000_000, 500_000_000]).samples == (1.5, 0.5)
    with pytest.raises(ValueError):
        h.Stats(())


def test_ratio_and_throughput() -> None:
    assert h.ratio(1.0, 4.0) == 0.25
    assert h.ratio(1.0, 0.0) is None
    assert h.throughput(2_000_000_000, 2.0, 1e9) == 1.0
    assert h.fmt_seconds(1.5) == "1.500 s"
    assert h.fmt_seconds(0.0123) == "12.30 ms"


def test_result_record_and_line() -> None:
    rec = h.result(
        bench="x", ours=0.5, anchor="tool", anchor_value=2.0, ours_MBps=1 / 3, bad=float("inf")
    )
    assert list(rec)[:6] == ["bench", "ours", "anchor", "anchor_value", "unit", "ratio"]
    assert rec["ratio"] == 0.25 and rec["unit"] == "s"
    assert rec["ours_MBps"] == 0.333333 and rec["bad"] is None
    line = h.result_line(rec)
    assert "\n" not in line and json.loads(line) == rec
    with pytest.raises(ValueError):
        h.result(bench="x", ours=1.0, anchor="a", anchor_value=1.0, ratio=2.0)


def test_emit_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    h.emit(h.result(bench="x", ours=1.0, anchor="a", anchor_value=0.0))
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out)["ratio"] is None


def test_alternate_order_and_failure() -> None:
    calls: list[str] = []
    ours, anchor = h.alternate(
        lambda: calls.append("A"), lambda: calls.append("B"), rounds=3, warmup=1, out=io.StringIO()
    )
    assert "".join(calls) == "AB" * 4  # one warm-up pair, then three alternations
    assert ours.n == anchor.n == 3
    with pytest.raises(h.BenchError, match="exit 1"):
        h.alternate([sys.executable, "-c", "pass"], ["false"], rounds=1, out=io.StringIO())


def test_workdir_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), h.workdir("t", root=tmp_path) as d:
        f = h.random_file(d / "f", 1000, chunk=300)
        assert f.stat().st_size == 1000 and h.warm_cache(f) == 1000
        raise RuntimeError
    assert not d.exists()
