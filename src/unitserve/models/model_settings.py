"""What belongs to one model, apart from the server that serves it.

`Settings` is one `unitserve serve` run: ports, workers, limits, logging, and the
one model it starts with. `ModelSettings` is a model: its implementation (the user
class), the constructor parameters, its name and version on the Open Inference
Protocol, its batching, its metadata and where its files are. The command line fills
one from `Settings` (`ModelSettings.of`); the prepackaged servers and a repository's
model settings build theirs with the plain constructor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from unitserve.engine import EngineConfig
from unitserve.settings import Settings


@dataclass(frozen=True)
class ModelSettings:
    implementation: str  # the user class: `Module`, `pkg.module.Class` or a server's name
    name: str | None = None  # on the Open Inference Protocol; None: the class's name
    version: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)  # constructor keywords
    uri: str | None = None  # where the model's files are (a storage URI)
    max_batch_size: int = 0  # adaptive batching: 0 or 1 is off
    max_batch_time: float = 0.0  # milliseconds a batch may wait to fill
    metadata: str | None = None  # MODEL_METADATA: the model's metadata (YAML or JSON)
    image: str | None = None  # the model's image (name:version): its default metadata
    service_type: str = "MODEL"  # what the component is to the Seldon graph
    # The engine's view of the pod (PREDICTIVE_UNIT_ID, _IMAGE and friends).
    engine: EngineConfig = field(default_factory=EngineConfig)

    @property
    def served_name(self) -> str:
        """The model's name on the Open Inference Protocol: its name, or the class's."""
        return self.name or self.implementation.rpartition(".")[2]

    @classmethod
    def of(cls, settings: Settings, parameters: Mapping[str, Any] | None = None) -> ModelSettings:
        """The model a `unitserve serve` run starts with. `parameters` are the
        constructor keywords already read from ``--parameters`` (the command line
        converts them, with its own errors, when it builds the user object)."""
        return cls(
            implementation=settings.interface_name,
            name=settings.model_name,
            version=settings.model_version,
            parameters=dict(parameters or {}),
            # Added to the server's flags by the prepackaged servers (--model-uri).
            uri=getattr(settings, "model_uri", None),
            max_batch_size=settings.max_batch_size,
            max_batch_time=settings.max_batch_time,
            metadata=settings.model_metadata,
            image=settings.unit_image,
            service_type=settings.service_type,
            engine=EngineConfig.of(settings),
        )
