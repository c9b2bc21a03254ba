"""Static tags: `tags()` is merged into every answer's meta.tags (after the request's own)."""


class Tagged:
    def tags(self):
        return {"model": "tagged", "version": "1.0.0"}

    def predict(self, X, features_names):
        return X
