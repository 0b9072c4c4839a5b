"""The rule set: token families, context rules, and the pieces user rules are built from.

Every rule is a regex *without* look-arounds or back-references, so the same source compiles
in Python ``re``, RE2 and Hyperscan. The set engine only answers "which rules can match this
line"; the Python ``re`` pattern then finds the spans and a ``check`` function applies the
escape-aware boundaries and validators. Because the confirm step is the same code whatever
the engine, every engine gives byte-identical output as long as its prefilter never misses a
line the confirm step would redact (see ``engines.py``).

``anchors`` serve the pure-stdlib engine: regex sources that start with a literal, such that
every match of the rule contains a match of one of them. ``ci`` rules are written in lower
case and run on ``line.lower()`` (same byte offsets); set engines get them with ``(?i)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .boundaries import ALNUM, B64URL, TOKEN_CHARS, left_ok, right_ok
from .validators import complex_enough, is_placeholder, is_secret_key, plausible_value

Check = Callable[[bytes, "re.Match[bytes]"], "tuple[int, int] | None"]
ValueCheck = Callable[[bytes], bool]

_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_KEY_CHARS = _NAME_CHARS | frozenset(b"-")
_B64 = frozenset(ALNUM | set(b"+/="))
_PEM_ESCAPES = re.compile(rb"\\+[nrt]")
_B64_CHAR = re.compile(rb"[A-Za-z0-9+/]")


@dataclass(frozen=True, eq=False)
class Rule:
    """One detector. ``name`` goes into the marker ``[REDACTED:<name>]``."""

    name: str
    pattern: str
    anchors: tuple[str, ...]
    check: Check
    ci: bool = False
    #: Run on every line in Python instead of going through the prefilter (user rules).
    always: bool = False
    regex: re.Pattern[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern.encode("utf-8")))

    @property
    def prefilter_source(self) -> bytes:
        """The pattern for a set engine: a superset of what ``regex`` matches on a line."""
        return (b"(?i)" if self.ci else b"") + self.pattern.encode("utf-8")


def token(
    group: int = 0,
    *,
    body: frozenset[int] | None = None,
    left: bool = True,
    min_len: int = 0,
    max_len: int = 1 << 20,
    trim: bytes = b"",
    valid: ValueCheck | None = None,
) -> Check:
    """Build a check for prefix-anchored tokens.

    ``left``: escape-aware left boundary at the match start. ``body``: characters that must
    not follow the match (fixed-length families). ``trim``: trailing characters given back
    (prose punctuation). ``valid`` sees the bytes to redact.
    """

    def check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
        if left and not left_ok(line, m.start()):
            return None
        if body is not None and not right_ok(line, m.end(), body):
            return None
        s, e = m.span(group)
        while trim and e > s and line[e - 1] in trim:
            e -= 1
        if not min_len <= e - s <= max_len:
            return None
        if valid is not None and not valid(line[s:e]):
            return None
        return s, e

    return check


def _has_digit(v: bytes) -> bool:
    return any(0x30 <= c <= 0x39 for c in v)


def _openai_ok(v: bytes) -> bool:
    body = v[3:]
    if not _has_digit(body):
        return False
    if any(0x41 <= c <= 0x5A for c in body):
        return True
    # DeepSeek (sk- + 32 hex) and OpenRouter (sk-or-v1- + 64 hex) keys are lower-case hex.
    tail = body.rsplit(b"-", 1)[-1]
    return len(tail) >= 32 and all(c in b"0123456789abcdef" for c in tail)


def _not_example(v: bytes) -> bool:
    return not v.endswith(b"EXAMPLE")


def _pem_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    body = _PEM_ESCAPES.sub(b"", m.group(1))
    if len(_B64_CHAR.findall(body)) < 64:
        return None  # documentation: "-----BEGIN PRIVATE KEY-----\n...\n"
    return m.span()


def _header_value_ok(v: bytes) -> bool:
    return complex_enough(v) and not is_placeholder(v) and _has_digit(v)


def _url_password_ok(v: bytes) -> bool:
    return not is_placeholder(v) and v.lower() not in (b"pass", b"pwd", b"user", b"username")


def _name_start(line: bytes, pos: int, chars: frozenset[int]) -> int:
    while pos > 0 and line[pos - 1] in chars:
        pos -= 1
    return pos


def _env_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    start = _name_start(line, m.start(), _NAME_CHARS)
    if start and line[start - 1] in _NAME_CHARS and not left_ok(line, start):
        return None
    name = line[start : m.start(1)].rstrip(b" \t=")
    if not is_secret_key(name):
        return None
    s, e = m.span(2)
    if not plausible_value(line[s:e], quoted=m.end(1) > m.start(1)):
        return None
    return s, e


def _keyed_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    start = _name_start(line, m.start(), _KEY_CHARS)
    end = m.start()
    while end < len(line) and line[end] in _KEY_CHARS:
        end += 1
    if not is_secret_key(line[start:end]):
        return None
    quoted = m.start(1) >= 0
    s, e = m.span(1) if quoted else m.span(2)
    if not plausible_value(line[s:e], quoted=quoted):
        return None
    return s, e


def _aws_secret_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    s, e = m.span(1)
    value = line[s:e]
    if not right_ok(line, e, _B64) or not complex_enough(value) or b"EXAMPLE" in value:
        return None
    return s, e


_ALNUM_TOK = token(body=ALNUM)
_URL_TOK = token(body=B64URL)

# Character classes written once: value characters for unquoted assignments, and whitespace
# spelled out (``\s`` differs between Python, RE2 and PCRE; ``\v`` means something else in PCRE).
_WS = r" \t\n\r\x0b\f"
_UNQUOTED = rf"[^{_WS}\"'\\`,;|&<>(){{}}\[\]]"
_QUOTE = r"\\*[\"']"
_SEP = r"[ \t]*(?:=>|:=|[:=])[ \t]*"

FAMILY_RULES: tuple[Rule, ...] = (
    Rule(
        "private-key",
        r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"
        r"((?:[A-Za-z0-9+/=]|\\+[nrt][ \t]*|(?:Proc-Type|DEK-Info|Version|Comment|Hash):[^\\\"\n]{0,200})*)"
        r"(?:-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----)?",
        (r"-----BEGIN",),
        _pem_check,
    ),
    Rule("anthropic", r"sk-ant-[a-z]{2,12}[0-9]{2}-[A-Za-z0-9_-]{20,}", (r"sk-",), token()),
    Rule("openai", r"sk-[A-Za-z0-9_-]{32,}", (r"sk-",), token(valid=_openai_ok)),
    Rule("huggingface", r"hf_[A-Za-z0-9]{34}", (r"hf_",), _ALNUM_TOK),
    Rule("huggingface-org", r"api_org_[A-Za-z0-9]{34}", (r"api_org_",), _ALNUM_TOK),
    Rule("github", r"gh[pousr]_[A-Za-z0-9]{36,}", (r"gh[pousr]_",), token(max_len=260)),
    Rule("github-fine-grained", r"github_pat_[A-Za-z0-9_]{60,}", (r"github_pat_",), token()),
    Rule(
        "gitlab",
        r"gl(?:pat|ptt|dt|rt|cbt|imt|soat|ffct|agent|oas|ft|wt)-[A-Za-z0-9_.-]{20,}",
        (r"gl(?:pat|ptt|dt|rt|cbt|imt|soat|ffct|agent|oas|ft|wt)-",),
        token(trim=b".", valid=complex_enough),
    ),
    Rule(
        "aws-access-key-id",
        r"A(?:KIA|SIA|BIA|CCA)[A-Z2-7]{16}",
        (r"A(?:KIA|SIA|BIA|CCA)",),
        token(body=ALNUM, valid=_not_example),
    ),
    Rule("google-api-key", r"AIza[A-Za-z0-9_-]{35}", (r"AIza",), _URL_TOK),
    Rule("google-oauth", r"ya29\.[A-Za-z0-9_-]{20,}", (r"ya29\.",), token()),
    Rule("google-refresh-token", r"1//0[A-Za-z0-9_-]{30,}", (r"1//0",), token(valid=complex_enough)),
    Rule("slack", r"xox[abeoprs]-[A-Za-z0-9-]{10,}", (r"xox[abeoprs]-",), token(valid=_has_digit)),
    Rule("slack-app", r"xapp-[0-9]-[A-Za-z0-9-]{10,}", (r"xapp-",), token()),
    Rule(
        "slack-webhook",
        r"hooks\.slack\.com/((?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,})",
        (r"hooks\.slack\.com/",),
        token(1, left=False),
    ),
    Rule("stripe", r"[rs]k_(?:live|test|prod)_[A-Za-z0-9]{20,}", (r"k_(?:live|test|prod)_",), token()),
    Rule("stripe-webhook", r"whsec_[A-Za-z0-9+/]{24,}=*", (r"whsec_",), token()),
    Rule("npm", r"npm_[A-Za-z0-9]{36}", (r"npm_",), _ALNUM_TOK),
    Rule("pypi", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}", (r"pypi-AgEI",), token()),
    Rule("groq", r"gsk_[A-Za-z0-9]{52}", (r"gsk_",), _ALNUM_TOK),
    Rule("xai", r"xai-[A-Za-z0-9]{80}", (r"xai-",), _ALNUM_TOK),
    Rule("sendgrid", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", (r"SG\.",), _URL_TOK),
    Rule("cerebras", r"csk-[A-Za-z0-9]{32,}", (r"csk-",), token(valid=complex_enough)),
    Rule("perplexity", r"pplx-[A-Za-z0-9]{32,}", (r"pplx-",), token(valid=complex_enough)),
    Rule("shopify", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", (r"shp(?:at|ca|pa|ss)_",), _ALNUM_TOK),
    Rule("digitalocean", r"do[opr]_v1_[a-f0-9]{64}", (r"do[opr]_v1_",), _ALNUM_TOK),
    Rule(
        "jwt",
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        (r"eyJ",),
        token(),
    ),
)

CONTEXT_RULES: tuple[Rule, ...] = (
    Rule(
        "url-password",
        rf"://[^{_WS}/@\"'\\:?#]*:([^{_WS}/@\"'\\?#]+)@",
        (r"://",),
        token(1, left=False, valid=_url_password_ok),
    ),
    Rule(
        "aws-secret-access-key",
        rf"secret[_-]?(?:access[_-]?)?key[a-z_]*(?:{_QUOTE})?{_SEP}(?:{_QUOTE})?([a-z0-9/+]{{40}})",
        (r"secret",),
        _aws_secret_check,
        ci=True,
    ),
    Rule(
        "auth-header",
        rf"authorization(?:{_QUOTE})?[ \t]*[:=][ \t]*(?:{_QUOTE})?[ \t]*"
        r"(?:(?:bearer|basic|token|bot|digest|apikey|key)[ \t]+)?([a-z0-9._~+/-]{8,}=*)",
        (r"authorization",),
        token(1, left=False, valid=_header_value_ok),
        ci=True,
    ),
    Rule(
        "bearer-token",
        r"bearer[ \t]+([a-z0-9._~+/-]{16,}=*)",
        (r"bearer",),
        token(1, left=False, valid=_header_value_ok),
        ci=True,
    ),
    Rule(
        "env-secret",
        rf"(?:PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH)[A-Z0-9_]*[ \t]*=[ \t]*(\\*[\"']?)({_UNQUOTED}{{6,}})",
        (r"PASS", r"PWD", r"SECRET", r"TOKEN", r"KEY", r"CREDENTIAL", r"AUTH"),
        _env_check,
    ),
    Rule(
        "keyed-secret",
        rf"(?:pass|pwd|secret|token|key|credential|auth|cookie)[a-z0-9_-]*(?:{_QUOTE})?{_SEP}"
        rf"(?:{_QUOTE}([^\"'\\{_WS}]{{6,}})|({_UNQUOTED}{{8,}}))",
        (r"pass", r"pwd", r"secret", r"token", r"key", r"credential", r"auth", r"cookie"),
        _keyed_check,
        ci=True,
    ),
)


def literal_source(value: bytes) -> str:
    """A regex source for an exact byte string that Python, RE2 and Hyperscan read alike."""
    return "".join(chr(c) if chr(c).isalnum() and c < 0x80 else f"\\x{c:02x}" for c in value)


def _literal_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    return m.span()


def known_value_rule(name: str, form: bytes) -> Rule:
    """Exact-value rule for one of the user's own secrets (one JSON escaping form of it)."""
    src = literal_source(form)
    return Rule(name, src, (src,), _literal_check)


def user_rule(name: str, regex: re.Pattern[bytes]) -> Rule:
    """A rule from the config. It redacts the group named ``secret`` if any, else the match."""
    group = regex.groupindex.get("secret", 0)

    def check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
        s, e = m.span(group)
        return (s, e) if e > s else None

    return Rule(name, regex.pattern.decode("utf-8"), (), check, always=True)


BUILTIN_RULES: tuple[Rule, ...] = FAMILY_RULES + CONTEXT_RULES
BUILTIN_NAMES = frozenset(r.name for r in BUILTIN_RULES)
__all__ = ["BUILTIN_NAMES", "BUILTIN_RULES", "TOKEN_CHARS", "Rule", "known_value_rule", "user_rule"]
