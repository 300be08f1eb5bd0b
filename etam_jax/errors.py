"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class EtamError(Exception):
    """A user-facing error: bad input, a missing file, a wrong key or shape.

    The message must name what is wrong (file, frame, object, key, flag) and,
    where it applies, what was expected and what was found.
    """
