"""Decoding videos and making synthetic ones."""
