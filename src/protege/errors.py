"""The one error type for bad user input."""

__all__ = ["ProtegeError", "NothingToDo"]


class ProtegeError(ValueError):
    """Bad input from the user: the message is one line naming the problem and the fix.

    The CLI prints it without a traceback and exits with code 2; the library raises it
    before any training starts or any output is written.
    """


class NothingToDo(Exception):
    """The command's result already exists (e.g. a finished run recovered into place): say so, exit 0."""
