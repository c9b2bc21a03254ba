"""The chain's output transformer: the identity."""


class Node:
    def transform_output(self, X, names):
        return X
