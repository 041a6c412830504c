"""Supervise cotiza: ``python3 monitor_service.py [--port 8000] [--interval S] [-- COMMAND]``."""

import sys

from cotiza.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main(["monitor", *sys.argv[1:]]))
