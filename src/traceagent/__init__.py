"""traceagent: mirror coding agents' session traces to a Hugging Face Storage Bucket.

Importing this package is cheap and never imports pystray or huggingface_hub: the heavy
modules are imported by the pieces that need them (the tray, the Hugging Face sink).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
