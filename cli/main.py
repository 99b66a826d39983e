"""Entry point of the ``flowkit`` command: the command group and how errors become exit codes."""

from __future__ import annotations

import sys
from typing import Any

import click

import flowkit
from flowkit.errors import ConfigError, FlowkitError, InputError, LockError
from flowkit.lifecycle import Interrupted, exit_code, interrupt_on_sigterm
from stddcn.errors import Preempted, StddcnError, TrainingError

EXIT_OK = 0
EXIT_SOME_FAILED = 1   # the run finished, but some videos failed (listed in the summary)
EXIT_USAGE = 2         # bad options or inputs, folder locked, settings differ from the folder's
EXIT_ERROR = 3         # the run could not go on (unreadable shard, disk full, ...)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); SIGTERM gives 143: 128 + the signal number

_USAGE_ERRORS = (ConfigError, InputError, LockError, StddcnError)
_RUN_ERRORS = (TrainingError,)  # stddcn errors that mean "could not go on", not "bad input"


class _OneLineError(click.ClickException):
    """A click error shown as ``flowkit: error: MESSAGE`` and, for usage errors, a hint line."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.exit_code, self.hint = exit_code, hint

    def show(self, file: Any = None) -> None:
        click.echo(f"flowkit: error: {self.message}", err=file is None, file=file)
        if self.hint:
            click.echo(f"try '{self.hint}'", err=file is None, file=file)


# Shown as click shows it: the help of a bare `flowkit` (click >= 8.2; older click exits).
_HELP_ERRORS = tuple(getattr(click.exceptions, name) for name in ("NoArgsIsHelpError",)
                     if hasattr(click.exceptions, name))

# click's messages begin with a capitalised word and end with a full stop; flowkit's do not.
_CLICK_FIRST_WORDS = ("Missing", "No", "Invalid", "Got", "Option", "Argument", "Could",
                      "Error")


def _one_line(exc: click.ClickException, ctx: click.Context | None = None) -> _OneLineError:
    """``exc`` (raised while parsing or running a command) as flowkit's one-line error."""
    message = " ".join(exc.format_message().split())
    if message.split(" ", 1)[0] in _CLICK_FIRST_WORDS:
        message = message[0].lower() + message[1:]
        message = message[:-1] if message.endswith(".") else message
        message = message.replace(". (Did you mean", " (did you mean")
    if not isinstance(exc, click.UsageError):  # e.g. click.FileError: a file given is unusable
        return _OneLineError(message, EXIT_USAGE)
    command = exc.ctx.command_path.split()[1:] if exc.ctx is not None else []
    if not command and ctx is not None and ctx.invoked_subcommand:
        command = [ctx.invoked_subcommand]
    return _OneLineError(message, EXIT_USAGE, " ".join(["flowkit", *command, "--help"]))


class _FlowkitGroup(click.Group):
    """Turns every error and interruption into one line on stderr and a documented exit code:
    flowkit's own errors, and click's usage errors (bad, missing or unknown option, no such
    file), which click would print as several lines; those get a second line, where to read
    the command's help."""

    def main(self, args: Any = None, prog_name: str | None = None, *more: Any,
             **extra: Any) -> Any:
        # "flowkit" in usage lines, however it was started (python -m flowkit, torchrun -m ...)
        return super().main(args, prog_name or "flowkit", *more, **extra)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _HELP_ERRORS:
            raise
        except click.ClickException as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with interrupt_on_sigterm():
                return super().invoke(ctx)
        except (_OneLineError, *_HELP_ERRORS):
            raise
        except click.ClickException as exc:
            raise _one_line(exc, ctx) from None
        except Preempted as exc:  # training stopped with a checkpoint: says how to go on
            click.echo(f"flowkit: {exc.message}", err=True)
            ctx.exit(exit_code(exc.signum))
        except KeyboardInterrupt as exc:
            click.echo("flowkit: interrupted; rerun the same command to resume", err=True)
            ctx.exit(exit_code(exc.signum) if isinstance(exc, Interrupted) else EXIT_INTERRUPTED)
        except (FlowkitError, StddcnError) as exc:
            click.echo(f"flowkit: error: {exc}", err=True)
            usage = isinstance(exc, _USAGE_ERRORS) and not isinstance(exc, _RUN_ERRORS)
            ctx.exit(EXIT_USAGE if usage else EXIT_ERROR)


EPILOG = """\b
Exit codes: 0 success; 1 the run finished but some videos failed (see the summary);
2 usage error (bad option or input, a folder that is not flowkit output, folder
locked by another run, settings differ from the folder's or the run's); 3 the run
could not go on (unreadable shard, disk full, read-only or failing output, training
diverged); 130 interrupted by Ctrl-C, 143 by SIGTERM (rerun the same command to
resume; for flowkit train, with --resume).
"""


@click.group("flowkit", cls=_FlowkitGroup, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(flowkit.__version__, prog_name="flowkit")
def main() -> None:
    """Optical flow and RGB frames for action recognition, stored in HDF5 shards.

    \b
    Typical use:
      flowkit synth --out demo/videos                 # a few videos with known motion
      flowkit extract demo/videos --out demo/shards   # RGB + TV-L1 flow into shards
      flowkit info demo/shards                        # what is there
      flowkit view demo/shards --out view.png         # look at it
      flowkit train demo/shards --model flow --batch-size 4 --out demo/run   # train on it
      flowkit eval demo/run                           # test it
    """


def _register() -> None:
    from flowkit.cli.backends import backends_command
    from flowkit.cli.evaluate import eval_command
    from flowkit.cli.extract import extract_command
    from flowkit.cli.flow import flow_command
    from flowkit.cli.inspect import info_command, verify_command, view_command
    from flowkit.cli.interop import export_command, import_command
    from flowkit.cli.merge import merge_command
    from flowkit.cli.predict import predict_command
    from flowkit.cli.synth import synth_command
    from flowkit.cli.train import train_command

    for command in (synth_command, extract_command, merge_command, info_command, verify_command,
                    view_command, flow_command, backends_command, export_command, import_command,
                    train_command, eval_command, predict_command):
        main.add_command(command)


_register()

if __name__ == "__main__":
    sys.exit(main())
