"""A router: it sends small inputs to child 0 and large ones to child 1, and keeps
the rewards that feedback reports for each child."""

import numpy as np


class FeatureRouter:
    def __init__(self, threshold="1.0"):
        # Constructor parameters arrive as typed values from --parameters.
        self.threshold = float(threshold)
        self.rewards = {0: 0.0, 1: 0.0}

    def route(self, features, feature_names):
        # The index of the child that answers this request.
        return int(np.asarray(features, dtype=float).mean() > self.threshold)

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        # `routing` is the child this router chose for the request being rewarded
        # (from the feedback's response.meta.routing[PREDICTIVE_UNIT_ID]).
        if routing in self.rewards:
            self.rewards[routing] += reward
        return {"rewards": {str(k): v for k, v in self.rewards.items()}}
