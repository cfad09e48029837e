"""The per-browser profile: round trip, hashed names, tolerance of bad files, secrets kept out, concurrent writers;
and the URL parameters of the shareable part."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading

import pytest

from core.presets.profile import FIELDS, Profile, from_query, profile_key, query_names, to_query
from core.tasks import SampleSpec, TaskRef

USER = "alice@example.org"
BROWSER = "b" * 43


def state(**changes):
    values = {"student": "gpt-4o-mini", "reflection": "claude-sonnet-4-5", "compare_models": ["gpt-4o-mini", "a, b"],
              "task_ref": TaskRef(kind="pubmed").to_dict(), "sample": SampleSpec(5, 2, 7, seed=3).to_dict(),
              "upload": {"file_id": "f1", "filename": "x.csv", "path": "/data/uploads/x.csv"},
              "baseline_job": "20261101-120000-abc123", "optimize_job": "20261101-120500-def456",
              "compare_runs": ["a" * 32, "b" * 32], "prompts_run": "c" * 32,
              "optimization_run": "d" * 32, "optimize_form": {"budget": "custom", "max_calls": 90, "capped": True}}
    return {**values, **changes}


def test_a_profile_round_trips_every_field(tmp_path):
    profile = Profile.of(tmp_path, USER, BROWSER)
    assert profile.load() == {}  # no file yet
    saved = profile.update(state())
    assert set(saved) == set(FIELDS)
    again = Profile.of(tmp_path, USER, BROWSER).load()  # a new session of the same browser
    assert again == state()
    profile.update({"student": "gpt-5-mini", "optimize_job": None})  # a merge: the rest stays
    assert profile.load() == state(student="gpt-5-mini", optimize_job=None)


def test_the_file_name_is_a_hash_of_user_and_browser(tmp_path):
    profile = Profile.of(tmp_path, USER, BROWSER)
    assert "alice" not in str(profile.path) and "example" not in str(profile.path)
    assert profile.path.parent == tmp_path / "profiles"
    assert profile.path.stem == profile_key(USER, BROWSER)
    others = {Profile.of(tmp_path, USER, "c" * 43).path, Profile.of(tmp_path, "bob@example.org", BROWSER).path,
              Profile.of(tmp_path, USER).path}
    assert profile.path not in others and len(others) == 3
    with pytest.raises(ValueError):
        Profile.of(tmp_path, "")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "", "\x00\xff", '{"student": 5, "sample": {"x": 1}}'])
def test_a_corrupt_file_is_an_empty_profile_and_is_replaced_on_write(tmp_path, content, caplog):
    profile = Profile.of(tmp_path, USER, BROWSER)
    profile.path.parent.mkdir(parents=True)
    profile.path.write_text(content, encoding="utf-8", errors="surrogateescape")
    with caplog.at_level(logging.WARNING, logger="core.presets.profile"):
        assert profile.load() == {}
    assert caplog.records, "a bad profile is logged, not silently dropped"
    profile.update({"reflection": "gpt-5-mini"})
    assert json.loads(profile.path.read_text(encoding="utf-8")) == {"reflection": "gpt-5-mini"}


def test_unknown_and_ill_typed_fields_are_dropped(tmp_path):
    profile = Profile.of(tmp_path, USER)
    profile.update({"student": "gpt-4o-mini", "api_key": "sk-not-kept-123456", "theme": "dark", "reflection": 42,
                    "compare_models": "not a list", "task_ref": {"kind": "no-such-source"},
                    "sample": {"train_per_label": 0}, "upload": {"path": object()}})
    assert json.loads(profile.path.read_text(encoding="utf-8")) == {"student": "gpt-4o-mini"}
    profile.path.write_text(json.dumps({"student": "x", "password": "hunter2-long", "extra": [1]}), encoding="utf-8")
    assert profile.load() == {"student": "x"}


def test_secrets_never_reach_the_file(tmp_path, monkeypatch):
    key = "sk-live-abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    profile = Profile.of(tmp_path, USER)
    profile.update({"task_ref": TaskRef(kind="pubmed", source=f"https://x.org/data.csv?key={key}").to_dict(),
                    "upload": {"filename": "a.csv", "path": "/d/a.csv", "token": "tok-0123456789abcdef"},
                    "student": key})
    text = profile.path.read_text(encoding="utf-8")
    assert key not in text and "tok-0123456789abcdef" not in text and "token" not in text
    assert profile.load()["task_ref"]["source"] == "https://x.org/data.csv?key=***"


def _write_many(path: str, field: str, values: list[str]) -> None:
    from pathlib import Path

    profile = Profile(Path(path))
    for value in values:
        profile.update({field: value, "student": value})


def test_concurrent_writers_leave_valid_json_and_the_last_write_wins(tmp_path):
    profile = Profile.of(tmp_path, USER, BROWSER)
    stop, bad = threading.Event(), []

    def read_all_the_time() -> None:
        while not stop.is_set():
            try:
                text = profile.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            try:
                json.loads(text)
            except ValueError:
                bad.append(text)

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    fork = multiprocessing.get_context("fork")
    writers = [fork.Process(target=_write_many, args=(str(profile.path), field, [f"{field}-{i}" for i in range(40)]))
               for field in ("optimize_job", "baseline_job")]
    threads = [threading.Thread(target=_write_many, args=(str(profile.path), "prompts_run",
                                                          [f"prompts-{i}" for i in range(40)]))]
    for w in (*writers, *threads):
        w.start()
    for w in (*writers, *threads):
        w.join(60)
    stop.set()
    reader.join()
    assert all(w.exitcode == 0 for w in writers)
    assert not bad, f"a reader saw half a file: {bad[0][:80]!r}"
    final = profile.load()
    # Every writer's own field survived the others' writes (merged under the lock), each at its last value.
    assert (final["optimize_job"], final["baseline_job"], final["prompts_run"]) == (
        "optimize_job-39", "baseline_job-39", "prompts-39")
    assert final["student"] in {"optimize_job-39", "baseline_job-39", "prompts-39"}  # one of the last writes
    assert not list(profile.path.parent.glob("*.tmp"))


# URL parameters --------------------------------------------------------------------------------


def as_url(params: dict[str, list[str]]) -> dict[str, list[str]]:
    """What a browser would send back: parameters through a real query string."""
    from urllib.parse import parse_qs, urlencode

    return parse_qs(urlencode(params, doseq=True), keep_blank_values=True)


def test_the_shareable_state_round_trips_through_a_url(tmp_path):
    values = state(task_ref=TaskRef(kind="file", source=str(tmp_path / "uploads" / "x.csv"), text_column="text",
                                    label_column="y", name="mine", merge_similar_labels=True).to_dict())
    params = to_query(values)
    assert params["compare"] == ["gpt-4o-mini", "a, b"]  # repeated keys: a name may hold a comma
    assert params["runs"] == ["a" * 32 + "," + "b" * 32]
    assert params["task"] == ["file"] and params["merge"] == ["1"] and "drop_missing" not in params  # defaults left out
    assert (params["train"], params["val"], params["test"], params["seed"]) == (["5"], ["2"], ["7"], ["3"])
    assert set(params) <= query_names() and "upload" not in params  # the upload stays in the profile
    found, notes = from_query(as_url(params), data_dir=tmp_path)
    assert notes == []
    assert found == {k: v for k, v in values.items() if k != "upload"}


def test_a_url_names_only_what_it_sets_and_bad_values_are_notes(tmp_path):
    found, notes = from_query(as_url({"student": ["gpt-5-mini"], "train": ["8"], "elsewhere": ["x"]}))
    assert found == {"student": "gpt-5-mini", "sample": SampleSpec(train_per_label=8).to_dict()}
    assert notes == []
    found, notes = from_query(as_url({"task": ["nope"], "train": ["0"], "opt_job": ["../../etc"], "reflection": ["r"]}))
    assert found == {"reflection": "r"}
    assert len(notes) == 3 and any("task" in n for n in notes) and any("opt_job" in n for n in notes)
    found, notes = from_query(as_url({"task": ["file"], "src": ["/etc/passwd"]}), data_dir=tmp_path)
    assert "task_ref" not in found and notes == ["the link's task file is not in this server's data dir"]
