"""Errors a user can cause. The CLI prints them in one line and exits non-zero."""


class MedgenError(Exception):
    """A problem the user can fix: bad input, bad config, missing server or token."""
