"""An epsilon-greedy router: each child is tried once, then the one with the best mean
reward gets the request, except for a share `epsilon` sent to a random child. Rewards
come from feedback: `routing` is the child this router chose for the rewarded request.

Each worker learns on its own (one copy of the router per worker): run this example
with one worker, or keep the rewards somewhere shared."""

import random


class EpsilonGreedy:
    def __init__(self, epsilon=0.1, children=2):
        self.epsilon = float(epsilon)
        self.tries = [0] * int(children)
        self.rewards = [0.0] * int(children)

    def route(self, features, feature_names):
        untried = [i for i, n in enumerate(self.tries) if n == 0]
        if untried:
            return untried[0]
        if random.random() < self.epsilon:
            return random.randrange(len(self.tries))
        means = [r / n for r, n in zip(self.rewards, self.tries, strict=True)]
        return means.index(max(means))

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        if routing is not None and 0 <= routing < len(self.tries):
            self.tries[routing] += 1
            self.rewards[routing] += reward
        return {"tries": self.tries, "rewards": self.rewards}
