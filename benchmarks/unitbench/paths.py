"""Where things live. Everything is relative to this checkout, so the harness runs from anywhere."""

import os
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = BENCH_DIR.parent
VENVS_DIR = Path(os.environ.get("BENCH_VENVS", BENCH_DIR / ".venvs"))
RESULTS_DIR = BENCH_DIR / "results"
RAW_DIR = RESULTS_DIR / "raw"
PAYLOAD_DIR = RAW_DIR / "payloads"
SCRATCH_DIR = RAW_DIR / "scratch"  # working directory of servers that write files there
MODELS_DIR = BENCH_DIR / "models"
CEILINGS_DIR = BENCH_DIR / "ceilings"
LUA_SCRIPT = BENCH_DIR / "lua" / "post.lua"
