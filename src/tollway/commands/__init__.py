"""One module per ``tollway`` subcommand: ``configure(parser)`` and ``run(args) -> int``."""
