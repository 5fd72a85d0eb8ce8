"""Data shown to people: entity ids, reasons and errors are data and may hold anything.

`printable` escapes what a terminal, a log line or an e-mail header must not receive raw;
`slack_escape` escapes Slack's three control characters.
"""

from __future__ import annotations

import re
from typing import Any

# C0/C1 controls (incl. CR, LF, ESC, NEL U+0085), the line/paragraph separators, the bidi
# embedding/override/isolate controls (text that reads differently than it is) and lone
# surrogates (not encodable: printing one raises UnicodeEncodeError)
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def printable(value: Any) -> str:
    """`str(value)` on one line: control and separator characters as `\\r`, `\\x1b`,
    `\\u2028`, ... (backslashes themselves are left alone)."""
    return UNSAFE.sub(_escape, str(value))


def slack_escape(value: Any) -> str:
    """`str(value)` for Slack message text: `&`, `<` and `>` as `&amp;`, `&lt;`, `&gt;` (else
    `<!channel>` or `<https://evil|label>` in an entity id would ping or link)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
