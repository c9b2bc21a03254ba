"""A custom health status: `health_status()` answers GET /health/status.
Kubernetes probes should use /live and /ready, which never call user code."""

import time


class HealthCheck:
    def load(self):
        self.loaded_at = time.time()
        self.predictions = 0

    def predict(self, X, features_names):
        self.predictions += 1
        return X

    def health_status(self):
        # Any answer type works (here a dict → jsonData); raising an exception answers 500.
        return {
            "status": "ok",
            "predictions": self.predictions,
            "uptime_s": round(time.time() - self.loaded_at, 3),
        }
