"""The DSPy program under optimization and how it is scored: signature, Predict or ChainOfThought, save/load and the
exact prompt (program); the GEPA metric with feedback and reading an answer (metric). Imports only core.config and
core.tasks."""
