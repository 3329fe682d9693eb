"""TPC-H tables as Parquet, generated once per (table, scale) with tpchgen-cli and cached.

`tpchgen-cli` comes with the `bench` extra (pip install -e '.[bench]', done by deploy/setup.sh).
Files land in bench/data/ (gitignored), e.g. bench/data/sf1/orders.parquet.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def tpch_parquet(table: str, scale: float) -> Path:
    """The Parquet file of TPC-H `table` at scale factor `scale`, generating it if missing."""
    out_dir = DATA_DIR / f"sf{scale:g}"
    path = out_dir / f"{table}.parquet"
    if path.exists():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f".{table}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    subprocess.run(
        [_tpchgen(), "parquet", "-s", f"{scale:g}", "--tables", table, "--output-dir", str(partial)],
        check=True,
        capture_output=True,
    )
    (partial / f"{table}.parquet").rename(path)
    shutil.rmtree(partial, ignore_errors=True)
    return path


def _tpchgen() -> str:
    beside_python = Path(sys.executable).parent / "tpchgen-cli"
    found = str(beside_python) if beside_python.exists() else shutil.which("tpchgen-cli")
    if not found:
        raise SystemExit("tpchgen-cli not found: install the bench extra (bash deploy/setup.sh)")
    return found
