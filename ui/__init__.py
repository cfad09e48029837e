"""Streamlit-only helpers for the dashboard: session state, cached data access, small widgets.

Layers: ``app.py`` routes → ``pages/*.py`` render → ``ui`` (state, caches, widgets, pure frame
shaping in ``ui.frames``) → ``core``. Pages never import dspy, litellm or mlflow; ``core`` never
imports streamlit.
"""
