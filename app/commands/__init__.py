"""One module per ``cadenza`` subcommand (see app/cli.py)."""
