"""MX Mailer's window (PySide6 on Qt's event loop through qasync). Talks to ``core`` only
through its public API and event stream."""
