"""stddcn: training action-recognition networks on flowkit shards.

``stddcn.train.train`` and ``stddcn.evaluate.evaluate_run`` are what ``flowkit train`` and
``flowkit eval`` run; ``stddcn.models`` holds the networks (importing nothing from flowkit),
``stddcn.data`` is the one bridge to ``flowkit.data``. See docs/training.md.
"""
