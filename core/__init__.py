"""MX Mailer's engine. Qt-free: nothing under ``core`` may import PySide6 or qasync."""
