"""Wire formats ⇄ the engine's small internal message (see `message`)."""
