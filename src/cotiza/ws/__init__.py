"""The WebSocket side of cotiza, one module per concern.

- ``frames``: close codes, RFC 6455 text framing, a type and a builder for every outbound
  frame, and ``Wire`` (a frame serialised once per publish).
- ``commands``: inbound commands parsed into a pydantic discriminated union.
- ``transport``: the only module touching uvicorn/websockets internals; the client socket
  a connection writes to (direct or plain ASGI), chosen once per connection.
- ``outbox``: the pure coalesce / overflow state machine of one client's pending frames.
- ``connection`` and ``hub``: one client, and every client indexed by what it follows.
- ``session``: admission and the command conversation of one connection.
"""
