"""GEPA Studio: routes only. Page config, the shared sidebar, and every page listed explicitly.

Start it with ``streamlit run app.py``.
"""

import streamlit as st

from core.program.user_program import refuse_programs_in_this_thread
from ui import auth, cache, routing, state
from ui.widgets import studio_errors

st.set_page_config(page_title="GEPA Studio", page_icon="🧬", layout="wide")
access = auth.require_access()  # beyond loopback or behind a trusted proxy: who it is, or no pages (see ui.routing)
routing.mark_routed()
refuse_programs_in_this_thread()  # a user's program runs in its job's worker, never in a page

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/models.py", title="Models", icon=":material/smart_toy:"),
    st.Page("pages/task.py", title="Task", icon=":material/dataset:"),
    st.Page("pages/baselines.py", title="Baselines", icon=":material/straighten:"),
    st.Page("pages/optimize.py", title="Optimize", icon=":material/auto_fix_high:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/bar_chart:"),
    st.Page("pages/optimization.py", title="Optimization", icon=":material/account_tree:"),
    st.Page("pages/prompts.py", title="Prompts", icon=":material/difference:"),
    st.Page("pages/history.py", title="History", icon=":material/history:"),
]
page = st.navigation(PAGES)

with studio_errors(stop=True):  # nothing works without knowing where runs live
    where = cache.settings()
state.restore(access.user, where.data_dir)  # a new session: from the URL, this browser's profile, the defaults
routing.open_requested_page()
state.follow_links()  # a link within the session that names a run (?run=<id>) puts it in view
state.sync_url()  # a page switch clears the URL's parameters in the browser: put them back
with st.sidebar:
    st.caption(f"Runs: `{where.tracking_uri}`  \nData: `{where.data_dir}`")
    st.button("Refresh", key="app.refresh", icon=":material/refresh:", on_click=cache.clear_caches,
              help="Reload runs, jobs and the model catalog now (they refresh on their own every few seconds).")
    state.set_browser_cookie()  # only when the browser sent none: its profile outlives this session
auth.show_status(access)  # the no-login warning on every page, or who is signed in

page.run()
