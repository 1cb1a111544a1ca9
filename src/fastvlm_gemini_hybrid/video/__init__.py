"""The video pipeline: decode (PyAV), sampling, motion, near-duplicate skipping, tracking, zones, events.

Modules import numpy/OpenCV/PyAV lazily through `_optional.require`, so importing this package
costs nothing and a missing `video` extra fails with the exact pip command.
"""
