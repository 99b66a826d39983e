"""Exception types of the training package. The CLI turns any of them into one line and exit 2."""


class StddcnError(Exception):
    """Base of every error the training package raises on purpose."""


class ModelError(StddcnError):
    """A model or backbone is unknown, misconfigured, or given weights that do not fit it."""


class CheckpointError(StddcnError):
    """A run folder or checkpoint file is missing, unreadable, or not a stddcn checkpoint."""


class SettingsError(StddcnError):
    """A training setting, or a combination of them, is invalid."""


class TrainingError(StddcnError):
    """Training cannot go on (for example, the loss diverged)."""
