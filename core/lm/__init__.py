"""What an LM call goes through: model specs, prices, presets and the saved catalog, building a DSPy LM (models,
spec_checks, catalog_file), a Databricks endpoint's credentials and their refresh (databricks_auth), the response
cache (cache), rate limits and local-server slots (limits), each call's outcome and the circuit breaker (breaker),
and the one path of a call through its steps, in one order (call). Imports only core.config."""
