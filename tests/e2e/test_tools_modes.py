"""`unitserve batch`'s other line formats (`--data-type str|json|raw`, `--method
feedback`) side by side with seldon-batch-processor, and `unitserve test
--from-metadata` against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.batch_lines import comparable
from tests.client_venvs import client_python
from unitserve.cli import tester

# name → (lines of the input file, extra flags)
MODES = {
    "str": (['"hello"', '"w\\u00f6rld"', '""'], ["-a", "str"]),
    "json": (['{"a": [1, 2]}', '{"b": "x", "c": null}', "[1, 2]"], ["-a", "json"]),
    "raw": (
        [
            '{"data": {"names": ["a", "b"], "ndarray": [[1, 2]]}}',
            '{"strData": "raw text"}',
            '{"jsonData": {"k": 1}}',
            '{"data": {"tensor": {"shape": [1, 2], "values": [3, 4]}}, "meta": {"tags": {"t": 1}}}',
        ],
        ["-a", "raw"],
    ),
    "feedback": (
        [
            '{"request": {"data": {"ndarray": [[1, 2]]}}, "response": {"data": {"ndarray": [[3]]}},'
            ' "reward": 1.0}',
            '{"request": {"data": {"ndarray": [[5, 6]]}}, "reward": 0.5}',
        ],
        ["-a", "raw", "-m", "feedback"],
    ),
}


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mode", list(MODES))
def test_batch_modes_write_what_the_original_writes(serve, tmp_path: Path, mode: str) -> None:
    lines, flags = MODES[mode]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n")
    server = serve("Component")
    common = ["-g", "seldon", "-h", f"127.0.0.1:{server.http_port}", "-i", str(source), *flags]
    ours = _run([sys.executable, "-m", "unitserve", "batch", *common, "-o", str(tmp_path / "o")])
    assert ours.returncode == 0, ours.stderr
    original = client_python("seldon-core").parent / "seldon-batch-processor"
    theirs = _run([str(original), "-d", "x", *common, "-o", str(tmp_path / "t")])
    assert theirs.returncode == 0, theirs.stderr
    # The original sends no tags with json lines (ours does, as for every other format),
    # and writes numbers that went through protobuf as floats (0.0 == 0 here).
    keep_tags = mode != "json"
    mine = comparable(tmp_path / "o", keep_tags)
    their = comparable(tmp_path / "t", keep_tags)
    if keep_tags:
        their.sort(key=lambda a: a["meta"]["tags"]["batch_index"])
        assert [a["meta"]["tags"]["batch_index"] for a in mine] == list(range(len(lines)))
    else:
        assert all("batch_index" in a["meta"]["tags"] for a in comparable(tmp_path / "o", True))
        # No index to sort the original's lines by: match each to one of ours (== holds
        # between 1 and 1.0, where a sort key would not).
        left = list(mine)
        for answer in their:
            assert answer in left, answer
            left.remove(answer)
        return
    assert mine == their


def test_batch_refuses_a_feedback_run_without_raw_lines(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("[[1]]\n")
    done = _run(
        [
            sys.executable,
            "-m",
            "unitserve",
            "batch",
            "-g",
            "seldon",
            "-h",
            "127.0.0.1:1",
            "-i",
            str(source),
            "-o",
            str(tmp_path / "o"),
            "-m",
            "feedback",
        ]
    )
    assert done.returncode == 2 and "--data-type raw" in done.stderr


# ----------------------------------------------------------------------------- test


METADATA = {
    "name": "echo",
    "inputs": [
        {"name": "x", "datatype": "FP64", "shape": [-1, 3]},
        {"name": "n", "datatype": "INT32", "shape": [-1, 1]},
    ],
    "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1, 4]}],
}


def _tester(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "unitserve", "test", "--from-metadata", *args])


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_tester_builds_its_contract_from_metadata(serve, transport: str) -> None:
    server = serve("Component", env={"MODEL_METADATA": json.dumps(METADATA)})
    port = server.http_port if transport == "rest" else server.grpc_port
    flags = ["--grpc"] if transport == "grpc" else []
    done = _tester("127.0.0.1", str(port), "-n", "3", "-b", "2", "-p", *flags)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 requests: 3 kept the contract" in done.stderr
    # The echo answers 4 columns, as the metadata's output says: x's 3 and n's 1.
    assert done.stdout.count("RECEIVED RESPONSE") == 3


def test_tester_from_metadata_finds_an_answer_that_breaks_it(serve) -> None:
    wrong = {**METADATA, "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1, 2]}]}
    server = serve("Component", env={"MODEL_METADATA": json.dumps(wrong)})
    done = _tester("127.0.0.1", str(server.http_port), "-n", "2")
    assert done.returncode == 1
    assert "the answer has 4 columns, the targets 2" in done.stdout
    assert "2 broke it" in done.stderr


def test_contract_from_seldon_style_metadata() -> None:
    """Seldon's own metadata form: an array message with column names."""
    contract = tester.from_metadata(
        {
            "inputs": [{"messagetype": "ndarray", "schema": {"names": ["a", "b"]}}],
            "outputs": [{"messagetype": "tensor", "schema": {"shape": [3]}}],
        }
    )
    assert [f["name"] for f in contract["features"]] == ["a", "b"]
    (target,) = contract["targets"]
    assert target["shape"] == [3] and target[tester.UNNAMED]
    with pytest.raises(tester.ContractError, match="strData"):
        tester.from_metadata({"inputs": [{"messagetype": "strData"}]})
