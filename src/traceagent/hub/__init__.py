"""Everything that talks to the Hugging Face Hub, and the only room that imports ``huggingface_hub``.

``api`` classifies the Hub's errors and sets HTTP timeouts; ``sink`` is the bucket sink; ``worker`` and
``worker_child`` run the Hub calls of the daemon in a child process; ``auth`` finds and stores the token;
``whoami`` asks who a token belongs to. The sync engine (``traceagent.sync``) never imports this room: the
wiring in ``traceagent.app.wiring`` hands it a sink.
"""
