"""unitserve: serve a plain Python class as a Seldon-protocol model microservice.

What a user class may import::

    from unitserve import SeldonComponent, SeldonResponse, SeldonMicroserviceException
    from unitserve import create_counter, create_gauge, create_timer
"""

from unitserve.errors import SeldonMicroserviceException, SeldonNotImplementedError
from unitserve.user_metrics import create_counter, create_gauge, create_timer
from unitserve.user_model import SeldonComponent, SeldonResponse
from unitserve.version import __version__

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
