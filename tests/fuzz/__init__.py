"""Fuzz tests: hypothesis on every input that comes from outside (server bytes, CSV files,
merge values). A short run belongs to the normal suite; ``MXMAILER_FUZZ=long`` is the long
run (see :mod:`tests.fuzz.profile`)."""
