"""How failures show on a page: failed examples by kind in words a user knows (``core.analytics.failures``), the
examples themselves one click away, and a DEGRADED badge that replaces a plain "succeeded"."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.analytics.failures import counts_text, failure_examples, failure_sentences, first_examples
from core.config.errors import StudioError
from ui import cache
from ui.widgets import safe_text

DEGRADED_BADGE = ":orange-badge[:material/warning: DEGRADED]"
MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#$~|"})  # a model's answer is shown as written
FAILURE_COLUMN_CONFIG = {
    "degraded": st.column_config.TextColumn("degraded", help="Too many failed examples, or stopped by the circuit "
                                            "breaker: the accuracy is not the model's."),
    "failed": st.column_config.NumberColumn("failed", format="%d", help="Examples without an answer (provider "
                                            "errors, answers that are not one of your labels): counted as wrong in "
                                            "the accuracy."),
    "failure_rate": st.column_config.NumberColumn("failure rate", format="percent"),
    "failures by kind": st.column_config.TextColumn("failures by kind", width="medium"),
}


def failure_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A run table for display: ``degraded`` as "DEGRADED" or "", and a "failures by kind" column in words
    ("30 not a label, 2 timed out")."""
    out = charts.with_failures(runs, runs)
    out["failures by kind"] = [counts_text(charts.failure_counts(row)) for row in out.to_dict("records")]
    out["degraded"] = ["DEGRADED" if bad else "" for bad in out["degraded"]]
    return out


def _examples(run_id: str) -> pd.DataFrame:
    try:
        return failure_examples(cache.artifact_csv(run_id, "records.csv"))
    except StudioError:  # an older run, or one that logged no records
        return failure_examples(None)


def failure_details(run_id: str, by_kind: dict[str, int], key: str) -> None:
    """Each kind's sentence with its first example ("30 answers were not one of your labels, e.g. '…'") and an
    expander listing every failed example of the run (nothing when no example failed)."""
    if not by_kind:
        return
    examples = _examples(run_id)
    for sentence in failure_sentences(by_kind, first_examples(examples)):
        st.markdown("- " + safe_text(sentence).translate(MARKDOWN))
    if examples.empty:
        return
    with st.expander(f"See the {len(examples)} failed examples"):
        st.dataframe(examples.drop(columns="kind"), hide_index=True, key=key, column_config={
            "answer or error": st.column_config.TextColumn("the model's answer, or the error", width="large"),
            "text": st.column_config.TextColumn("text", width="large")})


def degraded_warning(row: dict, tags: dict[str, str]) -> None:
    """Say that a run is degraded, with its failures in words, why, what the circuit breaker said if it stopped
    it, and its failed examples one click away."""
    label = row.get("label") or row.get("run_label") or row.get("run_name") or row.get("run_id")
    failures = (charts.failure_text(row.get("failed"), row.get("n"), charts.failure_counts(row))
                or charts.optimization_failure_text(row))
    reason = tags.get("studio.degraded_reason", "")
    text = f"{DEGRADED_BADGE} **{label}**" + (f": {failures}" if failures else "") + (f". {reason}" if reason else ".")
    if tags.get("studio.stopped_by") == "breaker":
        text += f"  \nStopped by the circuit breaker: {tags.get('studio.error') or 'the provider kept failing'}"
    st.warning(text + "  \nIts accuracy counts those examples as wrong: it says little about the model.",
               icon=":material/warning:")
    failure_details(str(row.get("run_id")), charts.failure_counts(row), key=f"failures.{row.get('run_id')}")
