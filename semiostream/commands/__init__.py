"""CLI subcommands, one module each; see :mod:`semiostream.cli`."""
