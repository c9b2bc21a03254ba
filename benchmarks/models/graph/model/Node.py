"""The chain's model: the identity, as models/seldon/IdentityModel.py."""


class Node:
    def predict(self, X, features_names):
        return X
