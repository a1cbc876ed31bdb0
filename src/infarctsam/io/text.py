"""Text from files (DICOM tags, reader messages, file names) made safe to print or draw as one plain line.

Control characters (newlines, NUL, the escape sequences a terminal obeys) and invisible format characters (the
right-to-left override that makes ``gpj.exe`` read as ``exe.jpg``, zero-width spaces) are replaced by their
``\\u`` escape with four hex digits; runs of whitespace become one space; the line is cut to a
length. The result is still text, never markup: HTML output escapes it as well, and drawings switch off any markup
interpretation.
"""

from __future__ import annotations

import unicodedata


def plain_line(text: object, limit: int = 500) -> str:
    """One printable line of at most ``limit`` characters, with control and format characters escaped.

    Parameters
    ----------
    text : object
        Anything; it is converted with ``str``.
    limit : int
        Longest result (an ellipsis ``...`` ends a cut line).

    Returns
    -------
    str
    """
    out = []
    for ch in " ".join(str(text).split()):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    line = "".join(out)
    return line if len(line) <= limit else line[: max(limit - 3, 0)] + "..."
