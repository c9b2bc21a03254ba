"""The soak test of issue 7: `make soak` (10 minutes) and its 60-second version in
`make test` (tests/reliability/test_soak.py) run the same code: `runner.run`."""
