"""The TensorFlow tensor protos (package ``tensorflow``) that ``tftensor`` payloads need.

Wire-compatible with TensorFlow's own; registered in unitserve's private pool.
"""
