"""unitserve: serve a plain Python class as a Seldon-protocol model microservice.

What a user class may import::

    from unitserve import SeldonComponent, SeldonResponse, SeldonMicroserviceException
    from unitserve import create_counter, create_gauge, create_timer

The names are imported on first use: importing a sub-package alone (``unitserve.storage``
for ``unitserve fetch``, say) does not pay for what they need (gRPC, for the errors'
status codes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from unitserve.version import __version__

if TYPE_CHECKING:
    from unitserve.errors import SeldonMicroserviceException, SeldonNotImplementedError
    from unitserve.user_metrics import create_counter, create_gauge, create_timer
    from unitserve.user_model import SeldonComponent, SeldonResponse

# Each public name, by the module that defines it.
_SOURCES = {
    "SeldonComponent": "unitserve.user_model",
    "SeldonMicroserviceException": "unitserve.errors",
    "SeldonNotImplementedError": "unitserve.errors",
    "SeldonResponse": "unitserve.user_model",
    "create_counter": "unitserve.user_metrics",
    "create_gauge": "unitserve.user_metrics",
    "create_timer": "unitserve.user_metrics",
}

__all__ = [
    "SeldonComponent",
    "SeldonMicroserviceException",
    "SeldonNotImplementedError",
    "SeldonResponse",
    "__version__",
    "create_counter",
    "create_gauge",
    "create_timer",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'unitserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SOURCES})
