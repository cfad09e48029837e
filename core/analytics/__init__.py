"""Analytics: statistics (stats) and pure chart functions (charts). Reads DataFrames, never the run store."""
