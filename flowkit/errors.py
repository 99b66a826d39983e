"""Exception types of flowkit. The CLI turns any FlowkitError into one line and a non-zero exit."""


class FlowkitError(Exception):
    """Base of every error flowkit raises on purpose."""


class ConfigError(FlowkitError):
    """An option or combination of options is invalid."""


class InputError(FlowkitError):
    """An input path or list file cannot be used."""


class DecodeError(FlowkitError):
    """A video cannot be decoded (corrupt, truncated, not a video, no frames)."""


class BackendError(FlowkitError):
    """A flow backend is unknown, misconfigured, or failed on its input."""


class ShardError(FlowkitError):
    """A shard or manifest is missing, malformed, or inconsistent."""


class LockError(FlowkitError):
    """Another run holds the output folder."""


class ExtractionError(FlowkitError):
    """An extraction run cannot go on (a worker process died); finished shards are kept."""


class ChecksumError(ShardError):
    """Stored bytes of a frame or flow disagree with their checksum (damaged on disk)."""


class NotOutputFolderError(ShardError, InputError):
    """A folder given as flowkit output holds none (no manifest): a usage error, exit code 2."""


class OutputError(FlowkitError):
    """The output folder cannot be written (disk full, read-only, no permission, I/O error).

    Not a video's fault: the run stops (exit code 3) instead of failing every remaining video.
    """


class FlowServerError(ExtractionError):
    """A device's flow process (the one model fed by every worker) died or could not start."""
