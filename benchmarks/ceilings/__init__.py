"""Ceiling servers: the least a Python server on this stack can spend per request.

Run from the benchmarks folder: `python -m ceilings.<module> --port N`.
"""
