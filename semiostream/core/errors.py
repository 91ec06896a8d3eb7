"""Error types shared across subpackages."""


class UserError(Exception):
    """A problem the user can fix (bad path, missing file, offline, bad config).

    The CLI prints the message without a traceback and exits with status 2; the message must say what
    was wrong and how to fix it.
    """
