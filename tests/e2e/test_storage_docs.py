"""docs/storage.md tried as a reader would: every shell and Python example runs as
written, against local stand-ins for the stores it names (moto for S3, the GCS emulator,
Azurite, a local HTTP server), put in place of the doc's hosts, and must print a path
that holds the model."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage_services import (
    AZURITE_ACCOUNT,
    Azurite,
    GcsEmulator,
    HttpFolder,
    MotoS3,
    azurite_installed,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "storage.md"
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.S)
MODEL = {"model.joblib": b"iris model", "metadata.yaml": b"name: iris\n"}


def _blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text())


class Stores:
    def __init__(self, root: Path) -> None:
        self.started: list[object] = []
        try:
            self._start_all(root)
        except BaseException:
            self.stop()  # those started before the one that failed
            raise

    def _start_all(self, root: Path) -> None:
        self.s3 = self._start(lambda: MotoS3(checked_keys=False))
        self.s3.s3.create_bucket(Bucket="models")
        for name, data in MODEL.items():
            self.s3.put("models", f"iris/{name}", data)
        self.gcs = self._start(lambda: GcsEmulator("seldon-models"))
        for name, data in MODEL.items():
            self.gcs.put("seldon-models", f"sklearn/iris/{name}", data)
        site = root / "site" / "models"
        site.mkdir(parents=True)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, data in MODEL.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        (site / "iris.tar.gz").write_bytes(buffer.getvalue())
        self.http = self._start(lambda: HttpFolder(root / "site"))
        self.azurite = self._start(Azurite) if azurite_installed() else None
        if self.azurite:
            for name, data in MODEL.items():
                self.azurite.put("models", f"iris/{name}", data)

    def _start(self, make):
        service = make()
        self.started.append(service)
        return service

    def stop(self) -> None:
        for service in self.started:
            service.stop()  # type: ignore[attr-defined]

    def localise(self, code: str) -> str:
        """The doc's example with the doc's hosts replaced by the local stand-ins."""
        code = code.replace("localhost:9000", f"127.0.0.1:{self.s3.port}")
        code = code.replace("https://example.com", self.http.url)
        if self.azurite:
            code = re.sub(
                r"AZURE_STORAGE_CONNECTION_STRING='[^']*'",
                f"AZURE_STORAGE_CONNECTION_STRING='{self.azurite.connection_string}'",
                code,
            )
            code = code.replace("myaccount", AZURITE_ACCOUNT)
        return code


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    started = Stores(tmp_path_factory.mktemp("stores"))
    try:
        yield started
    finally:
        started.stop()


def test_the_doc_has_an_example_per_scheme() -> None:
    text = "".join(code for _, code in _blocks())
    for needle in ("s3://", "gs://", ".blob.core.windows.net", "https://", "file://", "pvc://"):
        assert needle in text, needle


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_doc_example_runs(stores: Stores, tmp_path: Path, index: int) -> None:
    kind, code = _blocks()[index]
    if "blob.core.windows.net" in code and stores.azurite is None:
        pytest.skip("Azurite is not installed: run `npm ci` in tests/node")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "GOOGLE_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        UNITSERVE_MODEL_CACHE=str(tmp_path / "cache"),
        STORAGE_EMULATOR_HOST=stores.gcs.url,
        AWS_REGION="us-east-1",
    )
    code = stores.localise(code)
    command = ["bash", "-euc", code] if kind == "sh" else [sys.executable, "-c", code]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{kind} example {index}:\n{code}\n{done.stdout}\n{done.stderr}"
    if kind == "sh":  # `unitserve fetch` printed the folder holding the model
        folder = Path(tmp_path, done.stdout.strip().splitlines()[-1])
        got = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        assert got.items() >= MODEL.items()
