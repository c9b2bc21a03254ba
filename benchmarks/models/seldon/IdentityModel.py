class IdentityModel:
    """Seldon Core 1.x user-class contract: returns its input unchanged.

    Served by both `seldon-core-microservice IdentityModel` and `unitserve serve IdentityModel`.
    """

    def predict(self, X, features_names):
        return X
