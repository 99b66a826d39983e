"""``python -m flowkit`` runs the command line."""

from flowkit.cli.main import main

main()
