"""The extraction run."""
