"""The ``symphony`` command line: the host user's commands, the author's commands and their output."""
