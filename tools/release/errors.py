"""The one error the release tools raise: a person has to act before the command can go on."""


class ReleaseError(Exception):
    """Raised when a release step must stop; the message says what to do."""
