"""grpcio feature switches used by the generated ``prediction_pb2_grpc`` module.

Stock generated code refuses to import when the installed grpcio is older than
the grpcio-tools that generated it, because it uses two newer grpcio features
unconditionally. ``scripts/gen_proto.py`` removes that check and routes both
features through this module, so the committed code works with every grpcio
from 1.62 on and still uses the features where they exist:

* ``_registered_method=True`` on stub calls (grpcio >= 1.63): lets the client
  core pre-register the method path instead of interning it on every call.
* ``server.add_registered_method_handlers`` (grpcio >= 1.64): the server-side
  counterpart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import grpc

__all__ = ["REGISTERED_METHOD", "add_registered_method_handlers", "grpc_version"]


def grpc_version(version: str | None = None) -> tuple[int, int]:
    """Return (major, minor) of ``version`` (default: the installed grpcio's)."""
    match = re.match(r"(\d+)\.(\d+)", version if version is not None else grpc.__version__)
    if match is None:  # unparsable: assume a current grpcio
        return (99, 0)
    return (int(match.group(1)), int(match.group(2)))


#: Extra keyword arguments for ``channel.unary_unary`` and ``grpc.experimental.unary_unary``.
REGISTERED_METHOD: Mapping[str, Any] = (
    {"_registered_method": True} if grpc_version() >= (1, 63) else {}
)


def add_registered_method_handlers(
    server: Any, service_name: str, method_handlers: Mapping[str, Any]
) -> None:
    """Call ``server.add_registered_method_handlers`` when the server has it.

    Servers of grpcio < 1.64, and wrappers such as interceptor servers, do not;
    the generic handler the generated code adds first serves the calls then.
    """
    add = getattr(server, "add_registered_method_handlers", None)
    if add is not None:
        add(service_name, method_handlers)
