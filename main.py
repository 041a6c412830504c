"""Start the cotiza service: ``python3 main.py [--host H] [--port P]`` or ``uvicorn main:app``."""

from cotiza.asgi import app
from cotiza.cli.main import serve_main

__all__ = ["app"]

if __name__ == "__main__":
    raise SystemExit(serve_main())
