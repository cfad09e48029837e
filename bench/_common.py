"""Shared bits of the benchmarks: a stub server in its own process, and real PubMed text when shared/ has it."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "pubmed-rct-sample"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The engine benches measure GEPA Studio's own overhead; bench/tracing.py measures what MLflow traces add.
os.environ.setdefault("GEPA_STUDIO_TRACES", "off")
if "DSPY_CACHEDIR" not in os.environ:  # a fresh cache for this bench, removed at exit
    os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="bench-dspy-cache-")
    atexit.register(shutil.rmtree, os.environ["DSPY_CACHEDIR"], ignore_errors=True)
sys.path.insert(0, str(ROOT))


def sentences(n: int) -> pd.DataFrame:
    """``n`` labelled sentences: real PubMed RCT text from ../shared when present, else generated ones."""
    path = SHARED_SAMPLE / "eval_sample.csv"
    if path.exists():
        df = pd.read_csv(path)
        reps = -(-n // len(df))
        out = pd.concat([df] * reps, ignore_index=True).head(n).copy()
        out["description"] = [f"{t} [{i}]" for i, t in enumerate(out["description"])]  # unique: no cache hits
        return out
    from tests.scenario import make_table

    return make_table(-(-n // 5)).head(n)


class StubProcess:
    """``python -m tests.stub_server LATENCY`` in its own process (so the client's GIL is its own); ``faults``
    (fields of tests.stub_server.Faults) go to it as ``STUB_FAULTS``."""

    def __init__(self, latency_s: float, responder: str = "keyword", faults: dict | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "STUB_RESPONDER": responder}
        env.pop("STUB_FAULTS", None)
        if faults:
            env["STUB_FAULTS"] = json.dumps(faults)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.stub_server", str(latency_s)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    def __enter__(self) -> "StubProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(5)
