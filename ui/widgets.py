"""Small Streamlit pieces shared by the pages: errors as messages, labels, money and job states.

Every message shown here is scrubbed of configured key values (``core.config.secrets``), and importing this module
turns on the same scrubbing for the Streamlit process's log records.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.config import secrets
from core.config.errors import StudioError

logger = logging.getLogger(__name__)
secrets.install()  # log records of the dashboard process (streams stay Streamlit's own)

JOB_STATE_ICONS = {  # Material icons: Streamlit renders them in markdown and labels with its own font
    "queued": ":material/schedule:", "running": ":material/autorenew:", "succeeded": ":material/check_circle:",
    "failed": ":material/error:", "cancelled": ":material/stop_circle:", "interrupted": ":material/warning:",
}


def safe_text(text: object) -> str:
    """``text`` as a string with every configured key value replaced by ``***``: use it for anything shown."""
    return secrets.scrub(str(text))


def show_error(exc: BaseException) -> None:
    """A core error as ``st.error`` (what went wrong) and a caption (how to fix it); never a traceback or a key."""
    if isinstance(exc, StudioError):
        st.error(safe_text(exc.message), icon=":material/error:")
        if exc.hint:
            st.caption(safe_text(exc.hint))
    else:
        st.error(safe_text(f"Something went wrong: {type(exc).__name__}: {exc}"), icon=":material/error:")
        st.caption("This is a bug or an unexpected environment problem; the terminal running Streamlit has the "
                   "details.")


@contextmanager
def studio_errors(stop: bool = False) -> Iterator[None]:
    """Show any error raised inside the block as a message; with ``stop``, end the page there.

    Streamlit's own control flow (``st.stop``, ``st.rerun``) derives from BaseException and passes through.
    """
    try:
        yield
    except StudioError as exc:
        show_error(exc)
        if stop:
            st.stop()
    except Exception as exc:  # an unexpected failure is still a message, not a traceback
        logger.exception("unexpected error on a page")
        show_error(exc)
        if stop:
            st.stop()


def usd(value: float | None, digits: int = 4) -> str:
    if value is None or value != value:
        return "–"
    return f"${value:,.{digits}f}" if abs(value) < 1 else f"${value:,.2f}"


def usd_range(low: float | None, high: float | None) -> str:
    """A short cost range for a metric ("$0.46–$0.75", "$0.0031–$0.0052"): two significant digits, as an estimate
    deserves, so that it fits a quarter of the page."""
    def short(v: float) -> str:
        return f"${v:,.2f}" if v >= 1 or v <= 0 else f"${v:.{max(2, 1 - math.floor(math.log10(v)))}f}"
    if low is None or high is None or low != low or high != high:
        return "–"
    return short(low) if short(low) == short(high) else f"{short(low)}–{short(high)}"


def pct(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    return f"{value * 100:.1f}%"


def points_delta(diff: float | None) -> dict[str, object]:
    """``st.metric`` keyword arguments for a change in accuracy (``diff`` in 0..1): "+4.0 pts" in green with an
    arrow, "−4.0 pts" in red, and "±0.0 pts" grey without an arrow (no change is no gain)."""
    if diff is None or diff != diff:
        return {"delta": None}
    text = f"{diff * 100:+.1f}"
    if text in ("+0.0", "-0.0"):
        return {"delta": "±0.0 pts", "delta_color": "off", "delta_arrow": "off"}
    return {"delta": f"{text.replace('-', '−')} pts"}


def job_state(state: str) -> str:
    """A job state with its icon, for markdown."""
    return f"{JOB_STATE_ICONS.get(state, '')} {state}".strip()


def key_status(present: bool) -> str:
    return "present" if present else "missing"


def run_column_config(**extra: object) -> dict[str, object]:
    """Column formats for tables of runs (core.tracking.store.RUN_COLUMNS), plus page-specific ones."""
    return {
        "start_time": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.3f"),
        "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f"),
        "cost_per_1k": st.column_config.NumberColumn("$ per 1k", format="$%.4f"),
        **extra,
    }
