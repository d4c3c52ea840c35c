"""One error type for every input a user can get wrong.

The CLI turns it into a one-line message and exit code 2; the server maps it to a JSON body and a status.
"""


class XstiltsError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""
