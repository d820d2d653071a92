"""Errors the product raises on purpose.

`UserError` and its subclasses are mistakes in what a person gave us (a file, a flag, a
template): the CLI prints their one-line message and exits non-zero, never a traceback.
`CallParseError` and `ToolError` describe model output and are *scored*, not raised to the user.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from a person: printed as one line by the CLI, exit code 2."""


class TemplateError(UserError):
    """A template entry is wrong; the message names file, line and slot."""


class CallParseError(ValueError):
    """Text that is not a valid call program in the expected format.

    `kind` becomes the scored error type `parse:<kind>` (for example `parse:syntax`).
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def error_type(self) -> str:
        return f"parse:{self.kind}"


class ToolError(Exception):
    """A simulated API refused a call: a rule of the tool was broken.

    `error_type` is namespaced by the tool, e.g. `home_search:order`, so error taxonomies
    come for free and the scorer never needs to know which tool raised it.
    """

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
