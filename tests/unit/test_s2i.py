"""The .s2i/environment reader and the s2i start rules (environment over file)."""

from __future__ import annotations

import argparse

import pytest

from unitserve.cli import s2i
from unitserve.settings import SettingsError


def write(tmp_path, text):
    (tmp_path / ".s2i").mkdir(exist_ok=True)
    (tmp_path / ".s2i" / "environment").write_text(text)


def args(**kw):
    return argparse.Namespace(**{"service_type": None, "persistence": None, **kw})


def test_reads_pairs_comments_quotes_and_export(tmp_path):
    write(
        tmp_path,
        "# s2i settings\n\nMODEL_NAME=MyModel\nSERVICE_TYPE = ROUTER\n"
        "export PERSISTENCE=0\nAPI_TYPE='REST'\nPARAMS=\"[1, 2]\"\nEMPTY=\nURL=a=b\n",
    )
    assert s2i.read_environment_file(tmp_path / s2i.ENV_FILE) == {
        "MODEL_NAME": "MyModel",
        "SERVICE_TYPE": "ROUTER",
        "PERSISTENCE": "0",
        "API_TYPE": "REST",
        "PARAMS": "[1, 2]",
        "EMPTY": "",
        "URL": "a=b",
    }


def test_missing_file_is_empty(tmp_path):
    assert s2i.read_environment_file(tmp_path / s2i.ENV_FILE) == {}


@pytest.mark.parametrize("line", ["MODEL_NAME", "1X=2", "=value", "A B=1"])
def test_malformed_line_is_one_clear_error(tmp_path, line):
    write(tmp_path, f"SERVICE_TYPE=MODEL\n{line}\n")
    with pytest.raises(SettingsError, match=r"environment line 2: expected KEY=VALUE"):
        s2i.read_environment_file(tmp_path / s2i.ENV_FILE)


def test_environment_wins_over_the_file_variable_by_variable(tmp_path):
    write(tmp_path, "MODEL_NAME=FromFile\nSERVICE_TYPE=ROUTER\nPERSISTENCE=1\n")
    found = s2i.lookup({"MODEL_NAME": "FromEnv", "SERVICE_TYPE": ""}, tmp_path)
    assert found == {
        "MODEL_NAME": ("FromEnv", "environment"),
        "SERVICE_TYPE": ("ROUTER", ".s2i/environment"),
        "PERSISTENCE": ("1", ".s2i/environment"),
    }


def test_apply_start_fills_unset_flags_only(tmp_path):
    write(tmp_path, "MODEL_NAME=M\nSERVICE_TYPE=combiner\nPERSISTENCE=1\n")
    a = args()
    model, origin = s2i.apply_start(a, {}, tmp_path)
    assert (model, a.service_type, a.persistence) == ("M", "COMBINER", 1)
    assert "MODEL_NAME=M (.s2i/environment)" in origin
    a = args(service_type="MODEL", persistence=0)
    s2i.apply_start(a, {}, tmp_path)
    assert (a.service_type, a.persistence) == ("MODEL", 0)


def test_apply_start_without_anything(tmp_path):
    a = args()
    assert s2i.apply_start(a, {}, tmp_path) == (None, "")
    assert a.service_type is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SERVICE_TYPE=SCORER", r"SERVICE_TYPE='SCORER' \(.s2i/environment\) must be one of"),
        ("PERSISTENCE=yes", r"PERSISTENCE='yes' \(.s2i/environment\) must be an integer"),
    ],
)
def test_bad_values_name_their_source(tmp_path, text, message):
    write(tmp_path, f"MODEL_NAME=M\n{text}\n")
    with pytest.raises(SettingsError, match=message):
        s2i.apply_start(args(), {}, tmp_path)
