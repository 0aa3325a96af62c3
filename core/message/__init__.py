"""The message layer: a template compiled once into byte segments and merge slots, and
each recipient's message assembled from them in microseconds.

:mod:`core.template` is the public face; the modules here each do one job (read the
.eml, encode header words, compile bodies, build a template from parts, describe a
rendered message). Nothing here signs (DKIM is :mod:`core.dkim`) or sends.
"""
