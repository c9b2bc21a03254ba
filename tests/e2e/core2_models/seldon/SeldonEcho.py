"""The Seldon class unitserve serves in the agent tests (see ../README.md): its one
input back; a load that waits load_seconds (a constructor parameter, from the Model's
parameters)."""

import time


class SeldonEcho:
    def __init__(self, load_seconds="0"):
        self.load_seconds = float(load_seconds)

    def load(self):
        time.sleep(self.load_seconds)

    def predict(self, X, features_names):
        return X
