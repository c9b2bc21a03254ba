"""The soak test: `make soak` (10 minutes) and its 60-second version in
`make test` (tests/reliability/test_soak.py) run the same code: `runner.run`."""
