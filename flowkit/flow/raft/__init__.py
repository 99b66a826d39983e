"""RAFT optical flow (Teed and Deng, ECCV 2020) in PyTorch, loading the published weights.

``config`` holds the parameters and imports no torch (the CLI reads it at start-up);
``network`` is the model, ``checkpoint`` loads weights of both published formats, ``backend``
runs it on batches of frame pairs.
"""
