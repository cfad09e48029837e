"""The DSPy program under optimization and how it is scored: signature, Predict or ChainOfThought, save/load and the
exact prompt (program); the GEPA metric with feedback and reading an answer (metric); a user's own program from a
file, loaded, checked and fingerprinted (user_program). Imports only core.config and core.tasks (and core.scoring:
the metric, and loading a user's file)."""
