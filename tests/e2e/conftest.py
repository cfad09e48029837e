"""The dashboard as a real `streamlit run app.py` process on a free loopback port, with its own data dir."""

from __future__ import annotations

import pytest

from tests.e2e.browser import streamlit_app


@pytest.fixture
def app_url(tmp_path):
    with streamlit_app(tmp_path, GEPA_STUDIO_TRACES="on") as url:  # as users run it: every LM call an MLflow trace
        yield url
