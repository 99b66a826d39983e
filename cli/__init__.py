"""The ``flowkit`` command line (installed as flowkit.cli): thin commands over the library."""
