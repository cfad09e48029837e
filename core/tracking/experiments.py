"""Every MLflow experiment the studio makes is named here, and made here; no other module spells one
(``tests/core/test_experiment_root.py`` reads the code to hold that).

Where they live is the settings' ``experiment_root`` (``GEPA_STUDIO_EXPERIMENT_ROOT``, or the Home page):

- a task's runs: ``<root>/<task>`` (by default ``gepa-studio/<task>``, as every store made before the setting);
- the Ray jobs' mailbox (:mod:`core.jobs.mailbox`): ``<root>/_jobs``; with the default root it stays
  ``gepa-studio-jobs``, outside the ``gepa-studio/`` prefix, as older stores have it. Either way no run list shows it:
  :func:`task_experiments` leaves it out.

A Databricks workspace keeps experiments in folders (``/Users/<you>/...``, ``/Shared/...``): the root is checked
for one before any name is made (:func:`core.config.settings.check_experiment_root`), and a new experiment's parent
folder is created first with the Databricks SDK (``WorkspaceClient().workspace.mkdirs``), once per process.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any, Protocol

from core.config.errors import ConfigError
from core.config.secrets import scrub
from core.config.settings import DEFAULT_EXPERIMENT_ROOT, check_experiment_root, is_databricks

logger = logging.getLogger(__name__)

MAILBOX = "_jobs"  # the mailbox's name under a root that is set
LEGACY_MAILBOX = DEFAULT_EXPERIMENT_ROOT + "-jobs"  # the mailbox under the default root (outside its prefix)
PAGE = 1000  # experiments read per page when listing


class Where(Protocol):
    """What names an experiment: :class:`core.config.settings.Settings`, or anything with the same two fields."""

    @property
    def tracking_uri(self) -> str: ...

    @property
    def experiment_root(self) -> str: ...


def _root(where: Where) -> str:
    return check_experiment_root(where.experiment_root or DEFAULT_EXPERIMENT_ROOT, where.tracking_uri)


def experiment_name(where: Where, task: str) -> str:
    """The experiment of ``task``'s runs: ``<root>/<task>``."""
    root = _root(where)
    if root != DEFAULT_EXPERIMENT_ROOT and task == MAILBOX:
        raise ConfigError(f"A task may not be named {MAILBOX!r}: {root}/{MAILBOX} is the Ray jobs' mailbox.",
                          "Give the task another name.")
    return f"{root}/{task}"


def mailbox_experiment(where: Where | None = None) -> str:
    """The Ray jobs' mailbox experiment: ``<root>/_jobs``, or ``gepa-studio-jobs`` under the default root (and for
    ``where`` None)."""
    return _mailbox_of(_root(where) if where is not None else DEFAULT_EXPERIMENT_ROOT)


def _mailbox_of(root: str) -> str:
    return LEGACY_MAILBOX if root == DEFAULT_EXPERIMENT_ROOT else f"{root}/{MAILBOX}"


def is_task_experiment(where: Where, name: str) -> bool:
    """Does the experiment ``name`` hold a task's runs under this root (not the mailbox, not another root's)?"""
    root = where.experiment_root or DEFAULT_EXPERIMENT_ROOT
    return name.startswith(root + "/") and name != _mailbox_of(root)


def task_experiments(client: Any, where: Where) -> list[Any]:
    """The active experiments of every task under this root (never the mailbox), page after page. Read with a
    ``name LIKE`` filter, so a workspace's other experiments are not all listed; a root that cannot be used lists
    none (reading never fails on it: making a run says what is wrong)."""
    from mlflow.entities import ViewType

    root = where.experiment_root or DEFAULT_EXPERIMENT_ROOT
    try:
        check_experiment_root(root, where.tracking_uri)
    except ConfigError:
        return []
    found: list[Any] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=PAGE,
                                         filter_string=f"name LIKE '{root}/%'", page_token=token)
        found.extend(e for e in page if is_task_experiment(where, e.name))
        token = page.token
        if not token:
            return found


def ensure_experiment(client: Any, where: Where | None, name: str, artifact_location: str | None = None) -> str:
    """The id of the experiment ``name`` (from :func:`experiment_name` or :func:`mailbox_experiment`), created unless
    it exists (on Databricks, in a folder made first: ``where`` names the tracking server). Another process (a Ray
    worker elsewhere, another dashboard) may create it between the look and the create: theirs is taken."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if where is not None:
        ensure_parent(where, name)
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as exc:
        exp = client.get_experiment_by_name(name)
        if exp is None or exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return exp.experiment_id


_MADE: set[tuple[str, str]] = set()  # (tracking URI, folder) made by this process: mkdirs once each


def workspace_client(tracking_uri: str) -> Any:
    """The Databricks SDK's client for ``tracking_uri``'s workspace (``databricks://<profile>``: that profile of
    ``~/.databrickscfg``; ``databricks``: the SDK's own auth: environment, default profile, the app's identity)."""
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError as exc:
        raise ConfigError("The Databricks SDK is not installed, and a Databricks tracking server needs the "
                          "experiments' workspace folder created.",
                          "Install it (pip install databricks-sdk), or create the folder in the workspace.") from exc
    profile = tracking_uri.removeprefix("databricks://").split(":")[0] if "://" in tracking_uri else None
    return WorkspaceClient(profile=profile) if profile else WorkspaceClient()


def ensure_parent(where: Where, name: str) -> None:
    """Create the workspace folder that holds the experiment ``name`` when the tracking server is Databricks (a
    nested experiment path is refused there unless its folder exists); ConfigError, with what to do, when it cannot
    be made. Nothing to do on any other store."""
    parent = posixpath.dirname(name)
    uri = where.tracking_uri
    if not is_databricks(uri) or not parent.startswith("/") or (uri, parent) in _MADE:
        return
    try:
        workspace_client(uri).workspace.mkdirs(parent)
    except ConfigError:
        raise
    except Exception as exc:  # the SDK's auth, permission and network errors alike: say which folder and why
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConfigError(
            f"The workspace folder {parent} for the experiment {name} could not be created: {scrub(first)}",
            f"Create {parent} in the workspace (Workspace > Create > Folder) or let these credentials create it, "
            "or point GEPA_STUDIO_EXPERIMENT_ROOT at a folder you may write.") from exc
    _MADE.add((uri, parent))
    logger.info("workspace folder %s is there for %s", parent, name)
