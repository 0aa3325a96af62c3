"""Every size and count limit of the SMTP layer, in one place, with where it comes from."""

from __future__ import annotations

# RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers send longer banners and
# EHLO lines, so we accept 8x that and treat anything longer as hostile.
MAX_REPLY_LINE = 4096
# A whole (multiline) reply: the largest honest EHLO answers are a few KiB.
MAX_REPLY_BYTES = 64 * 1024
MAX_REPLY_LINES = 200
# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
MAX_BODY_LINE = 998
# How many bytes of a streamed body the session hands out per call.
BODY_CHUNK = 64 * 1024
