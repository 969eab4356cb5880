"""The laptop-side session record: atomic, readable, and clear when damaged."""

from pathlib import Path

import pytest

from tui.state import SessionRecord, StateError, StateStore, workspace_id


def test_round_trip_and_delete(tmp_path: Path):
    store = StateStore(tmp_path)
    record = SessionRecord("demo", str(tmp_path / "tether.toml"), "login", node="compute01", job_id="42")
    store.save(record)
    ws = workspace_id(tmp_path / "tether.toml")
    assert store.load(ws) == record
    assert [p.name for p in tmp_path.iterdir()] == [f"{ws}.json"]  # no temporary file left behind
    store.delete(ws)
    assert store.load(ws) is None


def test_damaged_record_names_the_file_and_the_fix(tmp_path: Path):
    store = StateStore(tmp_path)
    store.path("abc").write_text("{not json")
    with pytest.raises(StateError) as info:
        store.load("abc")
    assert "abc.json" in str(info.value) and "delete" in info.value.fix
