"""The smallest useful model: it answers with its input."""


class MyModel:
    def predict(self, X, features_names):
        return X
