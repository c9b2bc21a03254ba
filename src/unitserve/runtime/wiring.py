"""How a worker puts its transports together over its models: written once, for the
worker and for the tests that serve a model in-process the way a worker does."""

from __future__ import annotations

import orjson

from unitserve.models.dataplane import DataPlane
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import DEPLOYMENT_API
from unitserve.protocol.seldon.json_codec import JsonCodec, PassthroughCodec
from unitserve.protocol.seldon.proto_codec import FeedbackJsonCodec
from unitserve.settings import Settings
from unitserve.transport.accounting import RequestAccounting
from unitserve.transport.rest.app import RestApp
from unitserve.transport.rest.docs_page import DocsPage
from unitserve.transport.rest.openapi import document as openapi_document
from unitserve.transport.rest.v2 import V2Rest


def rest_app(
    settings: Settings,
    registry: ModelRegistry,
    accounting: RequestAccounting,
    plane: DataPlane | None,
) -> RestApp:
    """The worker's ASGI app: the Seldon routes over the registry's default model, the
    Open Inference Protocol's over `plane` (None: not served, as for a graph), the docs
    page unless --no-docs."""
    default = registry.default
    deployment = default is not None and default.seldon_api == DEPLOYMENT_API
    title = default.title if default is not None else settings.served_model_name
    document = openapi_document(v2=plane is not None, deployment=deployment)
    return RestApp(
        registry,
        {
            "json": JsonCodec(),
            "passthrough": PassthroughCodec(),
            "feedback": FeedbackJsonCodec(),
        },
        openapi=orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n",
        cors_origins=settings.cors_origins,
        max_body_size=settings.max_body_size,
        passthrough=settings.payload_passthrough,
        accounting=accounting,
        v2=V2Rest(plane) if plane is not None else None,
        docs=DocsPage(title) if settings.docs else None,
    )
