"""What the Open Inference Protocol says about the server itself: its name, version
and the protocol extensions it implements. Both transports answer with it."""

from __future__ import annotations

from typing import Any

from unitserve.version import __version__

#: The server's name in the server metadata.
SERVER_NAME = "unitserve"

#: The protocol extensions this server implements (the binary tensor data extension
#: is REST's; the server metadata lists what the server as a whole offers).
EXTENSIONS = ("binary_tensor_data", "model_repository")


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}
