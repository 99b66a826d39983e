"""Videos: decoding files into RGB frames, and making synthetic ones.

- ``decode``: PyAV decoding (frame counts, rotation, resizing, fps resampling) and probing;
- ``synth``: synthetic videos with known motion, for demos and tests;
- ``sprites``, ``motion_lab``: the motion laboratory, labelled videos whose class is in the
  motion only.

The bottom layer: imports nothing of flowkit but its base modules (``flowkit.errors``,
``flowkit.checks``, ``flowkit.writing``, ``flowkit.lifecycle``; docs/architecture.md).
"""
