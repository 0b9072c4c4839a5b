"""Value checks shared by the context rules (keyed values, env lines, URLs, headers).

Context rules are where false positives come from (``token: string``,
``password = base64.b64decode(…)``, ``"input_tokens": 12345``). These checks keep them out:
a key name must *mean* a secret, a value must look random enough, and code references,
placeholders and paths are skipped.
"""

from __future__ import annotations

import re

_CAMEL = re.compile(rb"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

#: One word of a key name that on its own says "secret".
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "credential",
        "credentials",
        "auth",
        "authtoken",
        "accesstoken",
        "refreshtoken",
        "cookie",
    }
)
#: A key name word that ends with one of these also says "secret" (``dbpassword``, ``ghtoken``).
SECRET_SUFFIXES = (b"password", b"passwd", b"secret", b"token", b"apikey", b"accesskey", b"privatekey")
#: ``<word> key`` pairs that name a secret (``api_key``, ``accessKey``, ``private-key``).
KEY_QUALIFIERS = frozenset(
    {
        "api",
        "access",
        "private",
        "secret",
        "signing",
        "encryption",
        "master",
        "client",
        "app",
        "service",
        "license",
        "account",
        "storage",
        "session",
        "auth",
        "admin",
    }
)
#: Last words that turn a secret-ish key into metadata (``max_tokens``, ``token_type``, ``secret_name``).
METADATA_WORDS = frozenset(
    {
        "type",
        "types",
        "count",
        "counts",
        "tokens",
        "length",
        "len",
        "size",
        "limit",
        "limits",
        "max",
        "min",
        "name",
        "names",
        "file",
        "files",
        "filename",
        "path",
        "paths",
        "dir",
        "url",
        "uri",
        "urls",
        "endpoint",
        "env",
        "var",
        "field",
        "fields",
        "header",
        "headers",
        "expiry",
        "expires",
        "expiration",
        "exp",
        "ttl",
        "timeout",
        "at",
        "in",
        "usage",
        "budget",
        "index",
        "format",
        "prefix",
        "suffix",
        "kind",
        "mode",
        "policy",
        "provider",
        "source",
        "label",
        "hint",
        "placeholder",
        "param",
        "params",
        "ref",
        "store",
        "manager",
        "helper",
        "cmd",
        "command",
        "regex",
        "pattern",
        "schema",
        "version",
        "required",
        "enabled",
        "present",
        "exists",
        "valid",
        "error",
        "errors",
        "status",
        "method",
        "location",
        "cache",
        "list",
        "map",
        "ids",
        "rate",
        "arn",
        "text",
        "prompt",
        "input",
        "output",
    }
)
_PLACEHOLDER_WORDS = frozenset(
    {
        b"password",
        b"passwd",
        b"secret",
        b"changeme",
        b"example",
        b"token",
        b"undefined",
        b"none",
        b"null",
        b"true",
        b"false",
        b"redacted",
        b"placeholder",
        b"dummy",
    }
)
_PLACEHOLDER_STARTS = (b"$", b"<", b"{", b"%(", b"%s", b"**", b"#{", b"[redacted", b"your_", b"your-", b"xxx")
_PLACEHOLDER_PARTS = (b"...", b"\xe2\x80\xa6", b"xxxx", b"****", b"redacted", b"<your", b"your_", b"example")
_IDENT = re.compile(rb"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*(?:\(.*|\[.*)?\Z", re.DOTALL)
_DOTTED = re.compile(rb"[a-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\(.*|\[.*)?\Z", re.DOTALL)
_COLOR = re.compile(rb"#[0-9a-f]{3,8}\Z")
#: Paths, URLs, ARNs, and "::" / "==" (scope operator, comparison) mistaken for a separator.
_NOT_SECRET_STARTS = (b"/", b"~/", b"./", b"../", b"file:", b"http://", b"https://", b"arn:", b":", b"=")
_CAMEL_WORDS = re.compile(rb"(?:[A-Z]+|[A-Z]?[a-z]+)(?:[A-Z][a-z]+)*\Z")
_NESTED = re.compile(rb"[A-Za-z_][\w.]*=[^=]")


def key_words(key: bytes) -> list[str]:
    """Split a key name into lowercase words: ``DB_PASSWORD`` and ``dbPassword`` → db, password."""
    return [w.decode("ascii").lower() for w in _CAMEL.findall(key)]


def is_secret_key(key: bytes) -> bool:
    """True when a key name says it holds a secret and is not metadata about one."""
    words = key_words(key)
    if not words or words[-1] in METADATA_WORDS or "public" in words:
        return False  # max_tokens, token_type, publicKeyToken, NEXT_PUBLIC_API_KEY
    for i, w in enumerate(words):
        if w in SECRET_WORDS or w.encode().endswith(SECRET_SUFFIXES):
            return True
        if w in ("key", "keys") and i > 0 and words[i - 1] in KEY_QUALIFIERS:
            return True
    return False


def is_placeholder(value: bytes) -> bool:
    """Documentation placeholders and markers: ``${DB_PASSWORD}``, ``<token>``, ``sk-...``."""
    low = value.lower()
    if low in _PLACEHOLDER_WORDS or low.startswith(_PLACEHOLDER_STARTS):
        return True
    if any(p in low for p in _PLACEHOLDER_PARTS) or low.endswith(b"*") or _COLOR.match(low):
        return True
    return len(set(low)) <= 2


def complex_enough(value: bytes) -> bool:
    """A letter plus a digit, or mixed case: random-looking rather than a word."""
    has_digit = any(0x30 <= c <= 0x39 for c in value)
    has_upper = any(0x41 <= c <= 0x5A for c in value)
    has_lower = any(0x61 <= c <= 0x7A for c in value)
    return (has_upper or has_lower) and (has_digit or (has_upper and has_lower))


def plausible_value(value: bytes, *, quoted: bool) -> bool:
    """Checks for the value of a keyed or env-style assignment."""
    if len(value) < (6 if quoted else 8) or len(value) > 4096:
        return False
    if is_placeholder(value) or value.startswith(_NOT_SECRET_STARTS) or not complex_enough(value):
        return False
    if _DOTTED.match(value):
        return False  # config.token, process.env.X, os.environ["X"]
    if _CAMEL_WORDS.match(value):
        return False  # ExclusiveStartKey, AWSSecretKey: a name, not a secret
    if not quoted and _NESTED.match(value):
        return False  # Credential=…, startToken:Token=None: an assignment inside the value
    if not quoted and _IDENT.match(value):
        # A bare identifier is a code reference unless it carries a digit (hunter2hunter2).
        return any(0x30 <= c <= 0x39 for c in value) and b"(" not in value and b"." not in value
    return True
