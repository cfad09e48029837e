"""Shipping a program: logging and registering it as an MLflow model, and how to use it (register); the served
pyfunc model (pyfunc). Imports the rooms below it (config, lm, program, tasks, tracking, evaluation, optimize);
never jobs or the CLI."""
