"""One module per subcommand of ``python -m bench``: ``configure(parser)`` and ``run(args) -> int``."""
