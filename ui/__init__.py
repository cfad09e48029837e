"""Streamlit-only helpers for the dashboard: session state, the one cache module, job panels, small widgets.

Layers: ``app.py`` routes → ``pages/*.py`` render → ``ui`` (state, cache, jobs, widgets, routing) → ``core``.
Pages and ui never import dspy, litellm or mlflow; ``core`` never imports streamlit (import-linter
contracts in pyproject.toml hold both lines).
"""
