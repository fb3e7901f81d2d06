"""Layer unpack: the ~200 MB 4-layer gzip image by Skiff vs `umoci unpack` and vs
`tar -xzf` + `sha256sum` of the same blobs; and one layer of 20,000 small files.

Every run writes into fresh storage (a new directory per run, all removed at the
end, untimed), as BENCHMARKS.md asks on this journal-less ext4.
Goal (informational): at least 5x faster than umoci.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness
from _image_inputs import big_image, gzip_layer, small_files

REPO = Path(__file__).resolve().parents[1]
PY = str(REPO / ".venv" / "bin" / "python")


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run unpack", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=5)
    opts = p.parse_args(args)
    umoci = harness.need_tool("umoci")
    n = itertools.count()
    with harness.workdir("skiff-bench-unpack") as base:
        print("building the inputs (untimed) ...", flush=True)
        layers, layout = big_image(base / "in")
        small = gzip_layer(small_files(base / "in" / "small"), base / "in" / "small.tar.gz")
        out = base / "out"
        out.mkdir()

        def ours() -> None:
            subprocess.run(
                [
                    PY,
                    str(Path(__file__).with_name("_unpack_ours.py")),
                    str(layout),
                    str(out / f"s{next(n)}"),
                ],
                check=True,
            )

        def umoci_unpack() -> None:
            subprocess.run(
                [umoci, "unpack", "--image", f"{layout}:big", str(out / f"u{next(n)}")],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def tar_sha() -> None:
            d = out / f"t{next(n)}"
            d.mkdir()
            script = " && ".join(
                f"tar -xzf {layer} -C {d} && sha256sum {layer} >/dev/null" for layer in layers
            )
            subprocess.run(["bash", "-c", script], check=True)

        ours.__qualname__ = "skiff unpack (4 layers + busybox, parallel)"
        umoci_unpack.__qualname__ = "umoci unpack"
        tar_sha.__qualname__ = "tar -xzf + sha256sum, layer by layer"
        print("big image:")
        big = harness.alternate_many(
            {"skiff": ours, "umoci": umoci_unpack, "tar+sha256sum": tar_sha},
            rounds=opts.rounds,
            warmup=0,
        )

        def ours_small() -> None:
            code = f"from skiff import _native; _native.unpack_layer({str(small)!r}, {str(out / f'ss{next(n)}')!r})"
            subprocess.run([PY, "-c", code], check=True)

        def tar_small() -> None:
            d = out / f"ts{next(n)}"
            d.mkdir()
            subprocess.run(["tar", "-xzf", str(small), "-C", str(d)], check=True)

        ours_small.__qualname__ = "skiff unpack_layer"
        tar_small.__qualname__ = "tar -xzf"
        print("20,000 small files:")
        small_stats = harness.alternate_many(
            {"skiff": ours_small, "tar": tar_small}, rounds=opts.rounds, warmup=1
        )
    s, u = big["skiff"].median, big["umoci"].median
    harness.goal("unpack at least 5x faster than umoci", s * 5 <= u)
    return harness.result(
        bench="unpack",
        ours=s,
        anchor="umoci unpack",
        anchor_value=u,
        tar_sha256sum_s=big["tar+sha256sum"].median,
        ratio_tar_sha256sum=harness.ratio(s, big["tar+sha256sum"].median),
        small_files_s=small_stats["skiff"].median,
        small_files_tar_s=small_stats["tar"].median,
        ratio_small_files_tar=harness.ratio(small_stats["skiff"].median, small_stats["tar"].median),
        rounds=opts.rounds,
        layers=len(layers),
        python=sys.version.split()[0],
    )
