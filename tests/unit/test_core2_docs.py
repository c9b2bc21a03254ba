"""docs/seldon-core-2.md, used as a reader uses it: its folder and model-settings.json
make a model the repository reader serves, its `unitserve manifest` command writes the
YAML it shows, and its table of variables is the one the server reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from unitserve.cli.main import main
from unitserve.repository import read_server_settings, scan
from unitserve.repository.server_settings import FIELDS, MODELS_DIR_ENV

PAGE = Path(__file__).resolve().parents[2] / "docs" / "seldon-core-2.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", PAGE.read_text(), re.S)


@pytest.fixture
def income(tmp_path: Path) -> Path:
    """The folder the page starts from, with the model-settings.json it shows."""
    folder = tmp_path / "income"
    (folder / ".s2i").mkdir(parents=True)
    (folder / ".s2i" / "environment").write_text("MODEL_NAME=Income\n")
    (folder / "Income.py").write_text(
        "class Income:\n"
        "    def __init__(self, threshold=0.5):\n"
        "        self.threshold = threshold\n\n"
        "    def predict(self, X, names):\n"
        "        return X\n"
    )
    return folder


def test_the_pages_model_settings_make_a_model(income: Path) -> None:
    [settings] = blocks("json")
    (income / "model-settings.json").write_text(settings)
    [model] = scan(income, env={})
    assert model.error is None
    assert (model.name, model.class_path, dict(model.parameters)) == (
        "income",
        "Income.Income",
        {"threshold": 0.7},
    )


def test_the_pages_manifest_command_writes_the_yaml_it_shows(
    income: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = next(b for b in blocks("console") if "unitserve manifest" in b)
    argv = shlex.split(command.replace("\\\n", " ").removeprefix("$ "))
    assert argv[:2] == ["unitserve", "manifest"]
    monkeypatch.chdir(income.parent)
    assert main(argv[1:]) == 0
    [shown] = blocks("yaml")
    written = (income / "seldon-core-2.yaml").read_text()
    assert list(yaml.safe_load_all(written)) == list(yaml.safe_load_all(shown))
    [model] = scan(income, env={})  # the model-settings.json it wrote
    assert (model.name, model.class_path, model.error) == ("income", "Income.Income", None)


def test_the_pages_variables_are_the_ones_read(tmp_path: Path) -> None:
    text = PAGE.read_text()
    rows = re.findall(r"^\| `(MLSERVER_\w+)` \| (?:`(\w+)`|—) \| ([^|]+) \|$", text, re.M)
    documented = {variable: key for variable, key, _ in rows}
    assert documented.pop(MODELS_DIR_ENV) == ""
    assert documented == {f"MLSERVER_{name.upper()}": name for name in FIELDS}
    defaults = read_server_settings(tmp_path, {})
    for variable, key, default in rows:
        if key and default.strip() not in ("gRPC's",):
            assert str(getattr(defaults, key)).lower() == default.strip().lower(), variable


def test_the_pages_build_commands_write_the_server_image_it_describes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's commands, in order, with --print added to the build (which then
    writes and builds nothing): the Dockerfile of the image the page describes."""
    block = next(b for b in blocks("console") if "unitserve build" in b)
    monkeypatch.chdir(tmp_path)
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line.removeprefix("$ "))
        if argv[0] == "mkdir":
            Path(argv[1]).mkdir()
            continue
        assert argv[:3] == ["unitserve", "build", "server"] and "--server" in argv
        assert main([*argv[1:], "--print"]) == 0
    text = capsys.readouterr().out
    assert 'CMD ["unitserve", "start"]' in text
    assert "EXPOSE 8080 8081 8082" in text and 'MLSERVER_MODELS_DIR="/mnt/models"' in text
    assert '"unitserve[lightgbm,mlflow,sklearn,xgboost]==' in text  # all four runtimes
