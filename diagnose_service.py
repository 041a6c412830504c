"""Diagnose a running cotiza service: ``python3 diagnose_service.py [--port 8000] [--json]``."""

import sys

from cotiza.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main(["diagnose", *sys.argv[1:]]))
