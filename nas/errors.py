"""Errors that the command-line tools report as one line with exit status 2."""


class UserError(Exception):
    """Bad input from the user: a one-line message naming the problem and the fix."""
