"""The node ↔ market node protocol (architecture §3.2).

One WebSocket per daemon. The market node opens with a random challenge, the daemon answers with an
EIP-191 signature, and the recovered address becomes the session's node id. After that, JSON text
frames carry pydantic messages (each with a ``type``, an ``id`` and, on replies, a ``corr``), and
binary frames carry relayed bytes with a small JSON header. :mod:`.messages` holds the models,
:mod:`.errors` the typed errors both ends share, :mod:`.signing` the canonical content that
agreement signatures cover.
"""
