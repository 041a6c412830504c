"""Generic test support: the live server, free ports, settings and one poller.

Domain kits (``tests/<area>/*_kit.py``) build on these; nothing here knows a domain.
``pythonpath = ["tests"]`` in pyproject.toml makes ``import support`` work from any test.
"""
