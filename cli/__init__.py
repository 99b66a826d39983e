"""The ``flowkit`` command line (installed as flowkit.cli): thin commands over the library.

Each command parses its options and calls a library function usable from Python; it may import
any part of flowkit, and stddcn for training (docs/architecture.md).
"""
