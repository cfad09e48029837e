"""Configuration and the base of every room: settings (environment, secrets.toml), key values and their scrubbing
(secrets), and the exceptions core raises (errors). Imports nothing else of core."""
