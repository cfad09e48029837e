"""Make every page run through app.py, even on a fresh server's first request.

With a ``pages/`` folder next to app.py, Streamlit starts each server process in its legacy multipage
mode: until some run calls ``st.navigation``, a request for ``/<page>`` runs ``pages/<page>.py`` alone,
without app.py (no page config, no shared sidebar, a file-name menu). That happens when the first
request after a restart is a deep link (a bookmark, or an open tab reconnecting). A page that finds
app.py has not run in its session sends the browser through app.py, which then opens that page.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.state import NEXT_PAGE, ROUTED, url_params


def mark_routed() -> None:
    """Called by app.py on every run."""
    st.session_state[ROUTED] = True


def _url() -> dict[str, list[str]]:
    # Name -> every value: as (name, value) pairs, Streamlit would keep only the last of ?compare=a&compare=b.
    return {name: st.query_params.get_all(name) for name in st.query_params}


def require_app(page_file: str) -> None:
    """Called first by every page with its ``__file__``: detour through app.py if it has not run.

    The URL's parameters go along (``st.switch_page`` would clear them): app.py restores the session from them."""
    if not st.session_state.get(ROUTED):
        st.session_state[NEXT_PAGE] = f"pages/{Path(page_file).name}"
        st.switch_page("app.py", query_params=_url())


def open_requested_page() -> None:
    """Called by app.py after ``st.navigation`` and ``state.restore``: finish a detour by opening the page
    first asked for, with the session's parameters in its URL."""
    target = st.session_state.pop(NEXT_PAGE, None)
    if target:
        st.switch_page(target, query_params=url_params())
