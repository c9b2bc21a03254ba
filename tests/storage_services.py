"""The storage services the storage tests and benchmark talk to, each a real server
started on a free 127.0.0.1 port and stopped by its PID:

- `MotoS3`: moto's S3 server (optionally checking credentials, as AWS does);
- `GcsEmulator`: gcp-storage-emulator (the GCS JSON API);
- `Azurite`: Microsoft's Azure Storage emulator (npm, installed in tests/node);
- `HttpFolder`: Python's own http.server over a folder.

Objects are put in place through each service's own API (boto3, plain HTTP, the Azure
SDK), never through unitserve, so that what unitserve fetches is checked against an
independent writer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_ports, stop_process, wait_until

NODE_MODULES = Path(__file__).parent / "node" / "node_modules"
AZURITE = NODE_MODULES / "azurite" / "dist" / "src" / "blob" / "main.js"
# Azurite's fixed development account (its documented, public key).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Service:
    """A process serving on `self.url`, stopped by its PID."""

    url = ""
    probe = "/"  # a path that answers once the service is up
    grace = 10.0  # seconds from SIGTERM to SIGKILL

    def __init__(
        self, command: list[str], port: int, env: dict[str, str] | None = None, scheme: str = "http"
    ):
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="storage-service-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            wait_until(self._answers, timeout=60)
        except AssertionError:
            self.stop()
            raise AssertionError(
                f"{command[0]} did not answer on {self.url}: {Path(self.log.name).read_text()}"
            ) from None

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exited: {Path(self.log.name).read_text()}")
        try:
            httpx.get(self.url + self.probe, timeout=1, verify=False)  # TLS: self-signed
        except httpx.TransportError:
            return False
        return True

    def stop(self) -> None:
        stop_process(self.process, self.grace)
        self.log.close()
        os.unlink(self.log.name)


class MotoS3(Service):
    """moto in server mode. With `checked_keys`, it checks credentials: the first three
    calls (unauthenticated) make an IAM user allowed everything on S3 and its access
    key, which `key_id` and `secret` then hold; any other key is refused. With `tls`, it
    serves HTTPS with a self-signed certificate."""

    probe = "/moto-api/"  # moto's own page: not an AWS call, so not counted

    def __init__(self, checked_keys: bool = True, tls: bool = False) -> None:
        env = {"INITIAL_NO_AUTH_ACTION_COUNT": "3"} if checked_keys else {}
        (port,) = free_ports(1)
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        super().__init__(command + ["--ssl"] * tls, port, env, "https" if tls else "http")
        self.key_id, self.secret = "testing", "testing"
        try:
            if checked_keys:
                self._make_user()
            self.s3 = self._client("s3")
        except BaseException:
            self.stop()  # the caller never gets the object to stop
            raise

    def _make_user(self) -> None:
        iam = self._client("iam")
        iam.create_user(UserName="models")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="models", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="models")["AccessKey"]
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]

    def _client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            verify=False,  # TLS: moto's self-signed certificate
            region_name="us-east-1",
            aws_access_key_id=getattr(self, "key_id", "testing"),
            aws_secret_access_key=getattr(self, "secret", "testing"),
        )

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)


class GcsEmulator(Service):
    def __init__(self, bucket: str) -> None:
        (port,) = free_ports(1)
        emulator = str(Path(sys.executable).parent / "gcp-storage-emulator")
        command = [emulator, "start", "-H", "127.0.0.1", "--port", str(port), "--in-memory"]
        super().__init__([*command, "--default-bucket", bucket, "-q"], port)

    def put(self, bucket: str, name: str, body: bytes) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url}/upload/storage/v1/b/{bucket}/o",
            params={"uploadType": "media", "name": name},
            content=body,
        )
        answer.raise_for_status()
        return dict(answer.json())


def azurite_installed() -> bool:
    return AZURITE.is_file() and shutil.which("node") is not None


class Azurite(Service):
    # Azurite waits for idle keep-alive connections to close before it exits; its data
    # is in memory only, so there is nothing to lose in not waiting long.
    grace = 1.0

    def __init__(self) -> None:
        (port,) = free_ports(1)
        command = ["node", str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
        super().__init__([*command, "--inMemoryPersistence", "--skipApiVersionCheck"], port)
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.url}/{AZURITE_ACCOUNT};"
        )

    def put(self, container: str, name: str, body: bytes) -> None:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        client = service.get_container_client(container)
        if not client.exists():
            client.create_container()
        client.upload_blob(name, body, overwrite=True)


class HttpFolder(Service):
    """`python -m http.server` over `folder` (it sends Last-Modified, no ETag)."""

    def __init__(self, folder: Path) -> None:
        (port,) = free_ports(1)
        command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        super().__init__([*command, "--directory", str(folder)], port)
