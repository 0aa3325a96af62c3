"""Bounces and unsubscribe requests that arrive later, by mail (docs/BOUNCES.md).

``dsn`` reads bounce mails (RFC 3464 and common text forms), ``unsubscribe`` recognises
requests sent to the campaign's List-Unsubscribe mailto, ``apply`` matches both to the
campaign's recipients and saves what they change, ``imap`` reads the mailbox over TLS,
``credentials`` finds the IMAP password, ``command`` is ``mxmailer bounces``. Nothing
here acts on a web request: an unsubscribe link's GET changes nothing anywhere.
"""
