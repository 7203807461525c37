"""What Parquet support costs: the ParquetLayer's size, pyarrow's import (cold-start) time, and
the reader's speed against NDJSON of the same rows. Quoted in docs/formats.md.

    .venv/bin/python -m bench.parquet_layer [--repeats 7] [--rows 100000] [--python PATH]

The layer is built with the target `sam build` runs (layers/parquet/Makefile, pyarrow for
Python 3.13 on x86_64, trimmed); the untrimmed wheel and zstandard (main layer) are installed
beside it for comparison. Import times are taken in fresh processes of Lambda's Python (3.13
here), `-X importtime`'s cumulative figure for the module, median over the repeats. Needs the
package index (pip); nothing else leaves the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip"]
WHEEL = [
    "--quiet",
    "--no-compile",
    "--only-binary=:all:",
    "--python-version",
    "3.13",
    "--implementation",
    "cp",
]
PLATFORMS = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def install(target: Path, *requirements: str) -> int:
    subprocess.run([*PIP, "install", *WHEEL, *PLATFORMS, "-t", str(target), *requirements], check=True)
    return du(target)


def build_layer(artifacts: Path) -> int:
    make = [
        "make",
        "-C",
        str(ROOT / "layers" / "parquet"),
        "build-ParquetLayer",
        f"ARTIFACTS_DIR={artifacts}",
    ]
    subprocess.run([*make, f"PIP={sys.executable} -m pip"], check=True, stdout=subprocess.DEVNULL)
    return du(artifacts)


def import_ms(python: str, path: Path, module: str, repeats: int) -> float:
    """Median cumulative import time of `module` in a fresh process (-X importtime, µs -> ms)."""
    times = []
    for _ in range(repeats):
        result = subprocess.run(
            [python, "-X", "importtime", "-c", f"import {module}"],
            env={**os.environ, "PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            check=True,
        )
        line = [row for row in result.stderr.splitlines() if re.search(rf"\|\s+{re.escape(module)}$", row)][
            -1
        ]
        times.append(int(line.split("|")[1]) / 1000)
    return statistics.median(times)


def reader_speed(rows: int, repeats: int) -> dict[str, float]:
    """Records per second: `parquet_records` and NDJSON's `open_records` over the same rows."""
    import orjson
    import pyarrow as pa
    import pyarrow.parquet as pq

    from segment_importer.read.formats import open_records
    from segment_importer.read.handle import BytesHandle
    from segment_importer.read.parquet import parquet_records

    table = pa.table(
        {
            "id": [f"evt-{i}" for i in range(rows)],
            "user_id": [f"user-{i % 997}" for i in range(rows)],
            "event": ["Order Completed"] * rows,
            "context_page_url": [f"https://shop.example/p/{i % 50}" for i in range(rows)],
            "timestamp": pa.array(
                range(1_600_000_000_000, 1_600_000_000_000 + rows), pa.timestamp("ms", tz="UTC")
            ),
            "revenue": [i / 100 for i in range(rows)],
            "properties": [{"plan": "pro", "seats": i % 9} for i in range(rows)],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=65_536)
    parquet = sink.getvalue()
    ndjson = b"".join(orjson.dumps(r) + b"\n" for r in parquet_records(BytesHandle(parquet)) if r.fields)

    def rate(read: Any) -> float:
        started = time.process_time()
        count = sum(1 for _ in read())
        return count / (time.process_time() - started)

    parquet_rates = [rate(lambda: parquet_records(BytesHandle(parquet))) for _ in range(repeats)]
    ndjson_rates = [rate(lambda: open_records(io.BytesIO(ndjson), "x.ndjson")) for _ in range(repeats)]
    return {
        "rows": rows,
        "parquet_bytes": len(parquet),
        "ndjson_bytes": len(ndjson),
        "parquet_records_per_cpu_s": round(statistics.median(parquet_rates)),
        "ndjson_records_per_cpu_s": round(statistics.median(ndjson_rates)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--python", default=str(Path.home() / ".pyenv/versions/3.13.0/bin/python3.13"))
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        figures: dict[str, Any] = {
            "parquet_layer_bytes": build_layer(base / "layer"),
            "pyarrow_wheel_bytes": install(base / "wheel", "pyarrow==26.0.1"),
            "zstandard_bytes": install(base / "zstd", "zstandard"),
        }
        layer = base / "layer" / "python"
        figures["import_pyarrow_parquet_ms"] = import_ms(
            arguments.python, layer, "pyarrow.parquet", arguments.repeats
        )
        figures["import_zstandard_ms"] = import_ms(
            arguments.python, base / "zstd", "zstandard", arguments.repeats
        )
    figures.update(reader_speed(arguments.rows, max(3, arguments.repeats // 2)))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
