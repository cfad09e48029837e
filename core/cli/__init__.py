"""Command line: ``python -m core models | check | baseline | optimize | jobs`` (entry point: ``core.cli.main``)."""
