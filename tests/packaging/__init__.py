"""The shipped app: its bundle (PyInstaller), its icons and its Linux desktop metadata."""
