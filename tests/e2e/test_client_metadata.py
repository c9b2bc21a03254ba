"""`Client(..., protocol="v2").model_metadata()` is the same dict over REST and gRPC, as
docs/tools.md says, also for a model that declares no metadata (where protobuf's JSON form
would leave out the empty platform, inputs and outputs) and for a versioned one."""

from __future__ import annotations

import pytest

from unitserve.client import Client


@pytest.mark.parametrize("flags", [(), ("--model-version", "3")], ids=["plain", "versioned"])
def test_model_metadata_is_one_dict_on_both_transports(serve, flags: tuple[str, ...]) -> None:
    server = serve("Identity", *flags)
    answers = {}
    for transport, where in (("rest", server.url), ("grpc", server.grpc_target)):
        with Client(where, protocol="v2", transport=transport, model="Identity") as c:
            answers[transport] = c.model_metadata()
    assert answers["rest"] == answers["grpc"]
    assert {"name", "platform", "inputs", "outputs"} <= answers["grpc"].keys()
    assert ("versions" in answers["grpc"]) == bool(flags)
