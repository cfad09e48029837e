"""Home's "Where jobs run" section: this machine or a Ray cluster, a Check of the cluster, and its saved address."""

from __future__ import annotations

import logging

import streamlit as st

from core.config.settings import get_secret, save_cluster, saved_cluster
from core.jobs.ray_backend import cluster_info, is_server
from ui import cache
from ui.widgets import studio_errors

ADDRESS_KEY = "home_ray_address"
logger = logging.getLogger(__name__)


def where_jobs_run() -> None:
    """Say where jobs run; check the cluster; set or clear its address (``RAY_ADDRESS`` wins: said so)."""
    settings = cache.settings()
    st.subheader("Where jobs run")
    address = settings.ray_address
    if not address:
        st.markdown(f"**This machine**: up to {settings.max_jobs} jobs at once (`GEPA_STUDIO_MAX_JOBS`); "
                    "the rest wait in the queue.")
    else:
        st.markdown(f"**Ray cluster at `{address}`**: jobs are Ray jobs there; results come back through the "
                    f"MLflow tracking server `{settings.tracking_uri}`.")
        if not is_server(settings.tracking_uri):
            st.warning("Jobs on a cluster need an MLflow tracking server: workers on other machines cannot write "
                       "this machine's file. Start `mlflow server` and set `MLFLOW_TRACKING_URI`, or clear the "
                       "address below.")
        if st.button("Check the cluster", icon=":material/lan:"):
            with studio_errors(), st.spinner("Asking the cluster…"):
                info = cluster_info(address)
                parts = [f"Ray {info['ray_version']}" if info["ray_version"] else "Ray answers"]
                if info["nodes"] is not None:
                    parts.append(f"{info['nodes']} node{'s' if info['nodes'] != 1 else ''} alive, "
                                 f"{info['cpus']:g} CPUs")
                st.success(" · ".join(parts))
    from_env = get_secret("RAY_ADDRESS")
    if from_env:
        st.caption(f"`RAY_ADDRESS` is set in the environment or secrets.toml ({from_env}): it wins over an address "
                   "saved here. Unset it to run jobs on this machine.")
        return
    with st.form("cluster_address", border=False):
        value = st.text_input("Ray cluster address", value=saved_cluster(settings.data_dir) or "", key=ADDRESS_KEY,
                              placeholder="http://head-node:8265 (blank: this machine)",
                              help="The Ray head's dashboard address (its job-submission API). The cluster's Python "
                                   "needs GEPA Studio's requirements and the provider keys in its own environment.")
        if st.form_submit_button("Save"):
            with studio_errors():
                running = [j for j in cache.job_manager().list()
                           if j.state == "running" and j.kind not in ("sweep", "repeat")]
                if running and (value.strip().rstrip("/") or None) != address:
                    st.warning(f"{len(running)} job{'s are' if len(running) > 1 else ' is'} running where jobs run "
                               "now: switch once they have ended (or cancel them), so none is lost from view.")
                    return
                saved = save_cluster(settings.data_dir, value)
                cache.clear_caches()  # the job manager is built again with the new backend
                logger.info("jobs now run %s", f"on the Ray cluster at {saved}" if saved else "on this machine")
                st.rerun()
