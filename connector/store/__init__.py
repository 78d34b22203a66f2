"""The store: every query the connector runs, behind typed functions, one module per table family.

Only this package calls :func:`connector.db.queries.q`. Each function takes the connection (or
pool) it runs on and keyword-only arguments, runs one named query (a few run a fixed sequence
whose order matters, and say why), and returns plain values, records or small dataclasses. It
never opens a transaction of its own: the caller decides what goes together.

A module is named for the table it holds; where that bare name is already a core module's
(``events``, ``leases``, ``poll_runs``, ``tokens``), it carries ``_table``, so that a name in
a traceback points at one file.
"""
