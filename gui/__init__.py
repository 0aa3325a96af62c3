"""MX Mailer's window: PySide6 on Qt's event loop through qasync.

Talks to ``core`` only through its public API and its event stream, never the reverse
(core never imports Qt). One module, one job:

* ``app`` start-up, exit codes, ``--smoke``; ``loop`` the qasync loop and its traps;
  ``qt_log`` Qt's warnings into logging.
* ``session`` one open campaign and its run; ``sandbox`` the demo campaign and the lab
  it is sent to (Qt-free); ``state`` which actions make sense (Qt-free).
* ``rows`` and ``display`` the table's data and words (Qt-free); ``recipients_model``,
  ``recipients_filter``, ``recipients_view`` the table; ``status_style`` colours and
  icons.
* ``main_window`` puts together ``summary``, ``banners``, ``transcript_panel``,
  ``log_panel``, ``welcome`` and ``actions``; its campaign-file actions (open, Save As,
  recent, drops) are in ``campaign_files``, its exports in ``exports``, retry and remove
  in ``row_actions``.
* ``smoke`` and ``screenshots`` drive the whole window for CI and the docs.
"""
