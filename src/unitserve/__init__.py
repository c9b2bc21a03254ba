"""unitserve: serve a plain Python class as a Seldon-protocol model microservice.

What a user class may import::

    from unitserve import SeldonComponent, SeldonResponse, SeldonMicroserviceException
    from unitserve import create_counter, create_gauge, create_timer
"""

from .custom_metrics import create_counter, create_gauge, create_timer
from .errors import SeldonMicroserviceException, SeldonNotImplementedError
from .user_model import SeldonComponent, SeldonResponse
from .version import __version__

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
