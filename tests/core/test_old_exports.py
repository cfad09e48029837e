"""A model exported before core was arranged in rooms still loads and predicts: its pickle names core.ship_model."""

from __future__ import annotations

import pickletools
from pathlib import Path

import pandas as pd

from core.evaluation.baseline import run_baselines
from core.lm.models import openai_compatible
from core.ship.register import export_model
from core.tasks import SampleSpec, TaskRef
from tests.scenario import write_csv
from tests.stub_server import keyword_classifier, keyword_label

TEXTS = ["Patients in cohort 3 were randomized to drug B or placebo.", "We conclude that drug A helps group 2."]
NEW, OLD = "core.ship.pyfunc", "core.ship_model"


def _as_old_export(model_dir: Path) -> None:
    """Rewrite the pickled model's class reference as an export made before the rooms wrote it: the module name
    (a SHORT_BINUNICODE string) swapped, and the length of the FRAME that holds it set to match."""
    pkl = model_dir / "python_model.pkl"
    data = bytearray(pkl.read_bytes())
    frame = None
    for op, arg, pos in pickletools.genops(bytes(data)):
        if op.name == "FRAME":
            frame = (pos, arg)
        elif op.name == "SHORT_BINUNICODE" and arg == NEW:
            break
    else:
        raise AssertionError("the export no longer pickles its class by reference")
    old = OLD.encode()
    data[pos:pos + 2 + len(NEW)] = b"\x8c" + bytes([len(old)]) + old
    if frame is not None and frame[0] < pos:
        data[frame[0] + 1:frame[0] + 9] = (frame[1] + len(old) - len(NEW)).to_bytes(8, "little")
    pkl.write_bytes(bytes(data))


def test_a_model_exported_under_the_old_module_path_loads_and_predicts(settings, store, stub, tmp_path):
    import mlflow

    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    run_baselines(store, ref, SampleSpec(2, 0, 3), [openai_compatible("small", "stub-small", stub.base_url)])
    run_id = store.list_runs(kind="baseline").iloc[0]["run_id"]
    shipped = export_model(store, run_id, name="old-export")
    mlflow.set_tracking_uri(settings.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(shipped.uri, dst_path=str(tmp_path / "model")))
    _as_old_export(local)

    model = mlflow.pyfunc.load_model(str(local))
    assert type(model.unwrap_python_model()).__module__ == NEW  # the alias hands back today's class
    stub.responder = keyword_classifier
    out = model.predict(pd.DataFrame({shipped.input_field: TEXTS}))
    assert out[shipped.output_field].tolist() == [keyword_label(t) for t in TEXTS]
