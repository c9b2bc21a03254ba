"""The options of each object store's file system, from the environment.

The variables are the ones Seldon Core's operator and KServe's storage initializer put
in a model's pod, so the secret a user already has works unchanged:

- S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
  ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` or ``S3_ENDPOINT`` (a URL,
  or a host with ``S3_USE_HTTPS=0`` for plain HTTP), ``S3_VERIFY_SSL=0``,
  ``AWS_CA_BUNDLE``, ``awsAnonymousCredential=true``. Without keys, the AWS SDK's own
  chain applies (profiles, IAM roles for service accounts, instance roles).
- GCS: ``GOOGLE_APPLICATION_CREDENTIALS`` (a service account file); without it, the
  default Google credentials, and anonymous access when there are none.
  ``STORAGE_EMULATOR_HOST`` points at an emulator.
- Azure blob: ``AZURE_STORAGE_CONNECTION_STRING``; or ``AZURE_STORAGE_ACCOUNT_NAME``
  with ``AZURE_STORAGE_ACCOUNT_KEY`` (KServe's ``AZURE_STORAGE_ACCESS_KEY`` too) or
  ``AZURE_STORAGE_SAS_TOKEN`` (or a SAS in the URL's query); or a service principal,
  ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET`` (KServe's
  ``AZ_TENANT_ID``, ``AZ_CLIENT_ID``, ``AZ_CLIENT_SECRET`` too). With none, anonymous
  access.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from unitserve.storage.locations import Location

_FALSE = ("0", "false", "no", "off")


def _first(env: Mapping[str, str], *names: str) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def s3_options(env: Mapping[str, str]) -> dict[str, Any]:
    # Signature version 4 everywhere, pre-signed URLs included (botocore still signs
    # those with version 2 in us-east-1, which S3-compatible servers may refuse).
    options: dict[str, Any] = {"config_kwargs": {"signature_version": "s3v4"}}
    client: dict[str, Any] = {}
    if env.get("awsAnonymousCredential", "").lower() == "true":
        options["anon"] = True
    else:
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            options.update(key=key, secret=secret)
            if env.get("AWS_SESSION_TOKEN"):
                options["token"] = env["AWS_SESSION_TOKEN"]
    region = _first(env, "AWS_REGION", "AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    endpoint = _first(env, "AWS_ENDPOINT_URL", "S3_ENDPOINT")
    if endpoint:
        if "://" not in endpoint:
            use_https = env.get("S3_USE_HTTPS", "1").lower() not in _FALSE
            endpoint = f"{'https' if use_https else 'http'}://{endpoint}"
        client["endpoint_url"] = endpoint
    if env.get("S3_VERIFY_SSL", "").lower() in _FALSE and env.get("S3_VERIFY_SSL"):
        client["verify"] = False
    elif env.get("AWS_CA_BUNDLE"):
        client["verify"] = env["AWS_CA_BUNDLE"]
    if client:
        options["client_kwargs"] = client
    return options


def gcs_options(env: Mapping[str, str]) -> dict[str, Any]:
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return {"token": env["GOOGLE_APPLICATION_CREDENTIALS"]}
    if env.get("STORAGE_EMULATOR_HOST"):
        return {"token": "anon"}
    # gcsfs tries the default credentials (gcloud, the metadata server), then none.
    return {}


def azure_options(env: Mapping[str, str], location: Location) -> dict[str, Any]:
    connection = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        return {"connection_string": connection}
    account = location.account or env.get("AZURE_STORAGE_ACCOUNT_NAME", "")
    options: dict[str, Any] = {"account_name": account}
    key = _first(env, "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY")
    sas = location.query or env.get("AZURE_STORAGE_SAS_TOKEN")
    tenant = _first(env, "AZURE_TENANT_ID", "AZ_TENANT_ID")
    client = _first(env, "AZURE_CLIENT_ID", "AZ_CLIENT_ID")
    secret = _first(env, "AZURE_CLIENT_SECRET", "AZ_CLIENT_SECRET")
    if key:
        options["account_key"] = key
    elif sas:
        options["sas_token"] = sas
    elif tenant and client and secret:
        options.update(tenant_id=tenant, client_id=client, client_secret=secret)
    else:
        options["anon"] = True
    return options


def options_for(location: Location, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    if location.kind == "s3":
        return s3_options(env)
    if location.kind == "gs":
        return gcs_options(env)
    return azure_options(env, location)
