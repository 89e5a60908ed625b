"""`make bench`: every benchmark in turn, each printing its table and writing JSON
under benchmarks/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "light_load.py",
    "hot_path.py",
    "http_load.py",
    "bench_core.py",
    "bench_conditions.py",
    "load_assign.py",
    "batch_stream.py",
    "memory.py",
    "propagation.py",
    "bulk.py",
    "interceptor_cost.py",
]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"\n=== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
