"""The one error the message layer raises: a template that cannot be sent as it is.

Raised while a template is compiled (never while a recipient's message is rendered: any
field value renders), with a message that says what is wrong and what to do.
"""

from __future__ import annotations


class TemplateError(ValueError):
    """The message file cannot be used; the text says why and what to do."""
