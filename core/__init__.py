"""MX Mailer's engine. Qt-free: nothing under ``core`` may import PySide6 or qasync."""

__version__ = "0.1.0"
