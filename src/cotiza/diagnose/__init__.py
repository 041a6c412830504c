"""``diagnose``: a one-shot command that checks a cotiza service and exits like Nagios.

It runs outside the service and reads the monitor's files (``cotiza.monitor.ledger``)
and reuses its probes; the command line and the printing live in ``cotiza.cli.diagnose``.
"""
