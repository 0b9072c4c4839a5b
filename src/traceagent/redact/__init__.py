"""Secret redaction for agent transcripts (JSONL), before anything leaves the laptop.

Usage::

    redactor = Redactor.from_settings(extra_rules=..., allowlist=..., extra_values=[hf_token])
    clean, counts = redactor.redact_chunk(complete_lines)

Design (see ``docs/redaction.md`` in the shared research notes): a set engine (Hyperscan or
RE2, pure ``re`` as a fallback) flags the lines that may hold a secret; Python ``re`` rules
confirm them with JSON-escape-aware boundaries and validators; matches are replaced in the
raw line by ``[REDACTED:<rule>]`` so the rest of the line stays byte-identical and valid
JSON. Lines without findings pass through untouched.
"""

from __future__ import annotations

from .core import Finding, RedactConfigError, Redactor, mask, preview_file
from .engines import ENGINE_ENV, ENGINE_NAMES, available_engines

#: Bump when rules change in a way that should re-redact (and re-upload) old files.
REDACTION_VERSION = 1

__all__ = [
    "ENGINE_ENV",
    "ENGINE_NAMES",
    "REDACTION_VERSION",
    "Finding",
    "RedactConfigError",
    "Redactor",
    "available_engines",
    "mask",
    "preview_file",
]
