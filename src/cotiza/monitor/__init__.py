"""The monitor: a supervisor process that starts, probes, restarts and reports on the service.

Dependencies point one way. ``cotiza.diagnose`` and the service's ``/health/detailed``
read what the monitor writes (``ledger``) and reuse its probes and process inspection
(``probes``, ``procs``); nothing here imports ``cotiza.diagnose``, the API or the server.
This ``__init__`` imports nothing, so the service can read the ledger cheaply.
"""
