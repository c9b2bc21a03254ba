"""``LIGHTGBM_SERVER``: a LightGBM booster saved as text (``model.txt`` or ``model.bst``).

Both protocols call the booster's ``predict`` on the features; on the Open Inference
Protocol the answer is one output named ``predict``, as MLServer's lightgbm runtime sends,
and a request whose ``parameters.content_type`` is ``pd`` gives the booster a DataFrame of
one column an input.
"""

from __future__ import annotations

import logging
from typing import Any

from unitserve.message import RuntimeOutputs
from unitserve.servers import model_files, request_content
from unitserve.user_model import SeldonComponent

log = logging.getLogger("unitserve.servers")

NAME = "LIGHTGBM_SERVER"
MODEL_FILES = ("model.txt", "model.bst")


class LightGBMServer(SeldonComponent):
    def __init__(
        self, model_uri: str | None = None, num_threads: int = 1, content_type: str | None = None
    ) -> None:
        """`num_threads`: LightGBM's threads for one prediction; one suits a server, which
        runs requests side by side already (raise it for a few large requests).
        `content_type`: how a request that names no content type is read (``np`` when
        unset), as MLServer's model settings ``parameters.content_type``."""
        super().__init__()
        self.num_threads = int(num_threads)
        self.content_type = request_content.checked_default(
            content_type, request_content.RUNTIME_CONTENT_TYPES
        )
        self.model_uri = model_uri
        self._lgb = model_files.require(NAME, "lightgbm")
        self.model_file = model_files.find_model_file(model_uri, MODEL_FILES, NAME)
        self._booster: Any = None

    def load(self) -> None:
        self._booster = self._lgb.Booster(model_file=str(self.model_file))
        log.info("%s: loaded %s (%d features)", NAME, self.model_file, self._booster.num_feature())

    def predict(self, X: Any, names: Any = None, meta: Any = None) -> Any:
        wanted = model_files.requested_outputs(meta)
        if wanted is not None:
            model_files.check_outputs(NAME, wanted, ("predict",))
            content_type = request_content.request_content_type(meta) or self.content_type
            X = request_content.decode(X, content_type)
        try:
            result = self._booster.predict(X, num_threads=self.num_threads)
        except (ValueError, TypeError, self._lgb.basic.LightGBMError) as exc:
            raise model_files.bad_input(exc) from exc
        if wanted is None:
            return result
        return RuntimeOutputs({"predict": result})

    def init_metadata(self) -> dict[str, Any]:
        return model_files.read_metadata(self.model_file)
