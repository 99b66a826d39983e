"""Exception types of the training package. The CLI turns any of them into one line and exit 2
(TrainingError: 3; Preempted: 143)."""


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


class Preempted(KeyboardInterrupt):
    """Training stopped on SIGTERM (a scheduler's notice before it kills the job) after writing
    a checkpoint to resume from; the CLI prints ``message`` and exits 143.

    A KeyboardInterrupt, like Ctrl-C, so that no ``except Exception`` swallows it.
    """

    def __init__(self, message: str, signum: int = 15) -> None:
        super().__init__(message)
        self.message, self.signum = message, signum
