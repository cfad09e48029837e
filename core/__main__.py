"""``python -m core``: the CLI, with key values scrubbed from logs, stdout and stderr (tracebacks included)."""

from core.config import secrets

secrets.install(streams=True)

from core.cli.main import main  # noqa: E402 - after the streams are wrapped: handlers made at import use them

raise SystemExit(main())
