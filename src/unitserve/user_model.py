"""What a user class may use: the `SeldonComponent` base and `SeldonResponse`.

Both mirror ``seldon_core.user_model``: migrating a class is changing its
``seldon_core`` imports to ``unitserve``. Subclassing `SeldonComponent` is
optional; any object with the right methods works (duck typing).
"""

from __future__ import annotations

from typing import Any

from unitserve.errors import SeldonNotImplementedError


class SeldonResponse:
    """A method result with runtime tags and metrics: ``SeldonResponse(data, tags, metrics)``.

    Runtime tags win over request and static tags; runtime metrics come last
    in the response and are recorded like static ones.
    """

    __slots__ = ("data", "metrics", "tags")

    def __init__(
        self,
        data: Any,
        tags: dict[str, Any] | None = None,
        metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        self.data = data
        self.tags = tags if tags is not None else {}
        self.metrics = metrics if metrics is not None else []

    @classmethod
    def create(cls, data: Any) -> SeldonResponse:
        """Wrap `data` unless it already is a SeldonResponse."""
        return data if isinstance(data, SeldonResponse) else cls(data)

    def __repr__(self) -> str:
        return f"SeldonResponse(data={self.data!r}, tags={self.tags!r}, metrics={self.metrics!r})"


class SeldonComponent:
    """Optional base class. Every method here says "not implemented", which makes
    unitserve fall back to its default for that method (identity transforms, an
    empty prediction, ``t:i`` class names, ...), as Seldon does."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def tags(self) -> dict[str, Any]:
        raise SeldonNotImplementedError("tags is not implemented")

    def class_names(self) -> list[str]:
        raise SeldonNotImplementedError("class_names is not implemented")

    def load(self) -> None:
        pass

    def predict(self, X: Any, names: Any, meta: dict | None = None) -> Any:
        raise SeldonNotImplementedError("predict is not implemented")

    def predict_raw(self, msg: Any) -> Any:
        raise SeldonNotImplementedError("predict_raw is not implemented")

    def send_feedback_raw(self, feedback: Any) -> Any:
        raise SeldonNotImplementedError("send_feedback_raw is not implemented")

    def transform_input(self, X: Any, names: Any, meta: dict | None = None) -> Any:
        raise SeldonNotImplementedError("transform_input is not implemented")

    def transform_input_raw(self, msg: Any) -> Any:
        raise SeldonNotImplementedError("transform_input_raw is not implemented")

    def transform_output(self, X: Any, names: Any, meta: dict | None = None) -> Any:
        raise SeldonNotImplementedError("transform_output is not implemented")

    def transform_output_raw(self, msg: Any) -> Any:
        raise SeldonNotImplementedError("transform_output_raw is not implemented")

    def metrics(self) -> list[dict[str, Any]]:
        raise SeldonNotImplementedError("metrics is not implemented")

    def feature_names(self) -> list[str]:
        raise SeldonNotImplementedError("feature_names is not implemented")

    def send_feedback(
        self, features: Any, feature_names: Any, reward: float, truth: Any, routing: Any = None
    ) -> Any:
        raise SeldonNotImplementedError("send_feedback is not implemented")

    def route(self, features: Any, feature_names: Any) -> int:
        raise SeldonNotImplementedError("route is not implemented")

    def route_raw(self, msg: Any) -> Any:
        raise SeldonNotImplementedError("route_raw is not implemented")

    def aggregate(self, features_list: list, feature_names_list: list) -> Any:
        raise SeldonNotImplementedError("aggregate is not implemented")

    def aggregate_raw(self, msgs: Any) -> Any:
        raise SeldonNotImplementedError("aggregate_raw is not implemented")

    def health_status(self) -> Any:
        raise SeldonNotImplementedError("health_status is not implemented")

    def health_status_raw(self) -> Any:
        raise SeldonNotImplementedError("health_status_raw is not implemented")

    def init_metadata(self) -> dict[str, Any]:
        raise SeldonNotImplementedError("init_metadata is not implemented")
