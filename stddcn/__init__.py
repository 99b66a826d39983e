"""stddcn: training package for STDDCN, D3D and two-stream baselines (built in later issues)."""
