"""The output folder: shards and the manifest."""
