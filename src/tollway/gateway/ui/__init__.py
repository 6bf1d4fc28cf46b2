"""The spend dashboard: server-rendered pages at ``/ui`` (spend over time, budgets,
keys, calls, one trace), served by ``tollway gateway`` behind its admin key and by
``tollway dashboard`` over a ledger alone.

No build step and nothing fetched at run time: HTML is written on the server, charts
are inline SVG, and the one stylesheet and the small script are package data under
``static/``. See :mod:`tollway.gateway.ui.app` for the app and its security rules.
"""
