"""A models folder's index by name (`unitserve.repository.RepositoryIndex`): what `scan`
and `find` give, seen at the next look after any change (as Seldon Core 2's agent
writes a model's files just before it loads it), while an unchanged folder is only
looked at, not read again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from unitserve.repository import RepositoryIndex, find, scan
from unitserve.repository import index as index_module


def write(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def sklearn(name: str, version: str = "1", uri: str = "./model.joblib") -> dict[str, Any]:
    return {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": uri, "version": version},
    }


def model_folder(root: Path, folder: str, settings: Any) -> Path:
    """A model's folder as the agent writes it: the model's file, then its settings."""
    write(root / folder / "model.joblib", "x")
    return write(root / folder / "model-settings.json", settings)


def summary(models: list[Any]) -> list[tuple[str, str | None, bool]]:
    return [(m.name, m.version, m.available) for m in models]


def test_the_index_gives_what_scan_gives(tmp_path: Path) -> None:
    model_folder(tmp_path, "iris_1/1", sklearn("iris_1"))
    model_folder(tmp_path, "iris_2/1", sklearn("iris_2", "2"))
    model_folder(tmp_path, "a/deep/er", sklearn("deep"))
    model_folder(tmp_path, "twin-a", sklearn("twin"))
    model_folder(tmp_path, "twin-b", sklearn("twin"))
    write(tmp_path / "torn/model-settings.json", '{"name": ')
    write(tmp_path / "no-settings/weights.bin", "x")
    write(tmp_path / ".hidden/model-settings.json", sklearn("hidden"))
    write(tmp_path / "empty/.keep/nothing", "")
    index = RepositoryIndex(tmp_path, env={})
    assert index.models() == scan(tmp_path, env={})
    assert index.models() == scan(tmp_path, env={})  # remembered, still the same
    for name in ("iris_1", "twin", "torn", "no-settings", "hidden", "missing"):
        assert index.find(name) == find(tmp_path, name, env={})
    assert index.find("iris_2", version="2") == find(tmp_path, "iris_2", "2", env={})
    assert index.find("iris_2", version="3") == []


def test_a_new_model_folder_is_seen_at_the_next_look(tmp_path: Path) -> None:
    model_folder(tmp_path, "iris_1/1", sklearn("iris_1"))
    index = RepositoryIndex(tmp_path, env={})
    assert index.find("mnist_1") == []
    # Written right after the look, within the same tick of the file system's clock.
    model_folder(tmp_path, "mnist_1/1", sklearn("mnist_1"))
    [found] = index.find("mnist_1")
    assert found.available and found.settings_file == tmp_path / "mnist_1/1/model-settings.json"
    # A model written into a folder that exists already (a new version's subfolder).
    model_folder(tmp_path, "iris_1/2", sklearn("iris_1", "2"))
    assert summary(index.find("iris_1")) == [("iris_1", "1", True), ("iris_1", "2", True)]


def test_rewritten_settings_are_seen_at_the_next_look(tmp_path: Path) -> None:
    settings = model_folder(tmp_path, "m", sklearn("m", version="1"))
    index = RepositoryIndex(tmp_path, env={})
    assert summary(index.find("m")) == [("m", "1", True)]
    # Same size, same folder, at once: only the contents differ.
    write(settings, sklearn("m", version="2"))
    assert summary(index.find("m")) == [("m", "2", True)]
    # Renamed in its file: gone under the old name, found under the new one.
    write(settings, sklearn("n", version="2"))
    assert index.find("m") == []
    assert summary(index.find("n")) == [("n", "2", True)]


def test_a_removed_folder_is_gone_at_the_next_look(tmp_path: Path) -> None:
    model_folder(tmp_path, "a", sklearn("a"))
    model_folder(tmp_path, "b/1", sklearn("b"))
    index = RepositoryIndex(tmp_path, env={})
    assert [m.name for m in index.models()] == ["a", "b"]
    shutil.rmtree(tmp_path / "b")
    assert index.find("b") == []
    assert [m.name for m in index.models()] == ["a"]


def test_two_models_of_one_name_are_refused_until_one_goes(tmp_path: Path) -> None:
    model_folder(tmp_path, "first", sklearn("twin"))
    index = RepositoryIndex(tmp_path, env={})
    assert summary(index.find("twin")) == [("twin", "1", True)]
    model_folder(tmp_path, "second", sklearn("twin"))
    refused = index.find("twin")
    assert [m.available for m in refused] == [False, False]
    for model in refused:
        assert "declared twice" in str(model.error)
        assert str(tmp_path / "first/model-settings.json") in str(model.error)
        assert str(tmp_path / "second/model-settings.json") in str(model.error)
    shutil.rmtree(tmp_path / "first")
    [left] = index.find("twin")
    assert left.available and left.folder == tmp_path / "second"


def test_broken_settings_make_the_model_unavailable_until_mended(tmp_path: Path) -> None:
    settings = write(tmp_path / "m/model-settings.json", '{"name": "m", ')
    index = RepositoryIndex(tmp_path, env={})
    [broken] = index.find("m")
    assert not broken.available and "is not JSON" in str(broken.error)
    # Not servable because of what lies outside its settings: its model file is missing.
    write(settings, sklearn("m", uri="./later.joblib"))
    [missing] = index.find("m")
    assert "does not exist" in str(missing.error)
    write(tmp_path / "m/later.joblib", "x")
    [mended] = index.find("m")
    assert mended.available


def test_an_unchanged_folder_is_looked_at_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing counts as written just now: every stamp is trusted from the first look.
    monkeypatch.setattr(index_module, "RECENT_SECONDS", 0.0)
    for i in range(20):
        model_folder(tmp_path, f"m{i:02d}", sklearn(f"m{i:02d}"))
    index = RepositoryIndex(tmp_path, env={})
    assert len(index.models()) == 20 and index.files_read == 20
    assert len(index.models()) == 20 and index.files_read == 0
    write(tmp_path / "m07/model-settings.json", sklearn("m07", version="7000"))
    assert summary(index.find("m07")) == [("m07", "7000", True)]
    assert index.files_read == 1
    index.find("m07")
    assert index.files_read == 0


def test_recent_changes_are_read_again_until_they_are_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_folder(tmp_path, "m", sklearn("m"))
    index = RepositoryIndex(tmp_path, env={})
    index.models()
    index.models()
    assert index.files_read == 1  # just written: not trusted to be unchanged
    monkeypatch.setattr(index_module, "RECENT_SECONDS", 0.0)
    index.models()
    index.models()
    assert index.files_read == 0
