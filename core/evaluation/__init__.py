"""Measuring a program: one model on a set of examples (evaluate), and evaluations and baselines as MLflow runs with
their resume files (baseline). Imports config, lm, program, tasks, tracking and analytics; never optimize, jobs or
the CLI."""
