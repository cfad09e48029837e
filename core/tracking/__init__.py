"""Where a run is written and read: the MLflow run store (store, store_sql), the run table that pages and the CLI
read (runs), a run's traces and dataset inputs (tracing, run_inputs), whether its process lives (procs). Imports
core.config, core.lm, core.tasks and core.analytics' pure helpers; never evaluation, optimize, jobs or the CLI."""
