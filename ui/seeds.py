"""Compare's seed spread: optimizations repeated with several seeds, each seed's test accuracy, the median and the
range, one sentence per repeat. Widget keys start with ``compare.``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.tracking.runs import spread_sentence
from ui.widgets import safe_text, studio_errors

MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#$~|"})  # model names are shown as typed, not as markdown


def spread_section(spread: pd.DataFrame) -> None:
    """The "Seed spread" section (a ``core.tracking.runs.seed_spread`` frame); nothing when no repeat has 2 seeds
    with results."""
    if spread.empty:
        return
    st.subheader("Seed spread")
    st.caption("The same optimization repeated with other seeds, on the same test examples: each seed's optimized "
               "(filled) and original (hollow) test accuracy, the median, and the range. One seed's gain is one draw.")
    with studio_errors():
        st.plotly_chart(charts.seed_spread_chart(spread), key="compare.chart.seed_spread")
    for key in spread["repeat_key"].unique():
        st.markdown("- " + safe_text(spread_sentence(spread, str(key))).translate(MARKDOWN))
