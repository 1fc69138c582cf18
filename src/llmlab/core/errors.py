"""Errors users see. Anything raised for bad input derives from `LlmlabError`, so the CLI can print
one clear line instead of a traceback."""


class LlmlabError(Exception):
    """Base class for errors caused by the user's input, files or settings."""


class InputError(LlmlabError, ValueError):
    """A value, file or name given by the user breaks a rule; the message names both."""
