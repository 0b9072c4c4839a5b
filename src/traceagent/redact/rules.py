"""The rule set: token families, context rules, and the pieces user rules are built from.

Every rule is a regex *without* look-arounds or back-references, so the same source compiles
in Python ``re``, RE2 and Hyperscan. The set engine only answers "which rules can match this
line"; the Python ``re`` pattern then finds the spans and a ``check`` function applies the
escape-aware boundaries and validators. Because the confirm step is the same code whatever
the engine, every engine gives byte-identical output as long as its prefilter never misses a
line the confirm step would redact (see ``engines.py``).

``anchors`` serve the pure-stdlib engine: literals (or regexes that start with a literal)
such that every match of the rule contains one of them. ``ci`` rules are written in lower
case and run on ``line.lower()`` (same byte offsets); set engines get them with ``(?i)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from . import anchors as anc
from .boundaries import ALNUM, B64URL, TOKEN_CHARS, left_ok, right_ok, word_start
from .validators import complex_enough, is_placeholder, is_secret_key, plausible_value

Check = Callable[[bytes, "re.Match[bytes]"], "tuple[int, int] | None"]
ValueCheck = Callable[[bytes], bool]

_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_KEY_CHARS = _NAME_CHARS | frozenset(b"-")
_B64 = frozenset(ALNUM | set(b"+/="))
_ALNUM_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_PEM_ESCAPES = re.compile(rb"\\+[nrt]")
_B64_CHAR = re.compile(rb"[A-Za-z0-9+/]")


@dataclass(frozen=True, eq=False)
class Rule:
    """One detector. ``name`` goes into the marker ``[REDACTED:<name>]``.

    ``keywords``: literals every match starts with. The confirm step then tries an anchored
    match at each keyword occurrence instead of a regex search through the line, which is much
    faster for patterns that do not start with one literal. ``anchors`` default to them.
    """

    name: str
    pattern: str
    check: Check
    #: Stdlib-engine anchors: ``bytes`` are literals (found with ``bytes.find``), ``str`` are
    #: regexes starting with a literal. Every match of the rule contains one of them.
    anchors: tuple[str | bytes, ...] = ()
    keywords: tuple[bytes, ...] = ()
    #: Keywords are lower-case and looked for in ``line.lower()`` (``False``: exact bytes).
    keyword_lower: bool = True
    ci: bool = False
    #: Anchors are searched in the lower-cased chunk (default: same as ``ci``).
    anchor_ci: bool | None = None
    #: Run on every line in Python instead of going through the prefilter (user rules).
    always: bool = False
    regex: re.Pattern[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern.encode("utf-8")))
        if not self.anchors and self.keywords:
            object.__setattr__(self, "anchors", self.keywords)
        if self.anchor_ci is None:
            object.__setattr__(self, "anchor_ci", self.ci)

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


def _is_call(line: bytes, end: int) -> bool:
    """The value is followed by ``(`` or ``[``: a function call or an index, i.e. code."""
    return end < len(line) and line[end] in b"(["


def _names_itself(key: bytes, value: bytes) -> bool:
    """The value spells (the end of) its own key: a constant naming a header or field."""
    v = bytes(c for c in value.lower() if c in _ALNUM_LOWER)
    return len(v) >= 4 and bytes(c for c in key.lower() if c in _ALNUM_LOWER).endswith(v)


_HEADER_VALUE = token(1, left=False, valid=_header_value_ok)


def _auth_header_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    """``Authorization`` must be a word of its own (``Proxy-Authorization`` is fine,
    ``AggregationAuthorization`` is an identifier)."""
    if not left_ok(line, m.start(), _LETTERS):
        return None
    return _HEADER_VALUE(line, m)


def _env_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    start = word_start(line, m.start(), _NAME_CHARS)
    if start and line[start - 1] in _NAME_CHARS and not left_ok(line, start):
        return None
    name = line[start : m.start(1)].rstrip(b" \t=")
    if not is_secret_key(name):
        return None
    s, e = m.span(2)
    value = line[s:e]
    if not plausible_value(value, quoted=m.end(1) > m.start(1)) or _is_call(line, e):
        return None
    if _names_itself(name, value):
        return None  # X_ACCESS_TOKEN_HEADER = "X-Access-Token"
    return s, e


def _keyed_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    start = word_start(line, m.start(), _KEY_CHARS)
    end = m.start()
    while end < len(line) and line[end] in _KEY_CHARS:
        end += 1
    key = line[start:end]
    if not is_secret_key(key):
        return None
    quoted = m.start(1) >= 0
    s, e = m.span(1) if quoted else m.span(2)
    value = line[s:e]
    if not plausible_value(value, quoted=quoted) or _is_call(line, e):
        return None
    if (value.isalpha() and len(value) < 12) or _names_itself(key, value):
        return None  # a word ("NextToken") or an enum (PassStateEntered = "PassStateEntered")
    return s, e


def _aws_secret_check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
    s, e = m.span(1)
    value = line[s:e]
    if not right_ok(line, e, _B64) or not complex_enough(value) or b"EXAMPLE" in value:
        return None
    return s, e


_PLAIN = token()
_ALNUM_TOK = token(body=ALNUM)
_URL_TOK = token(body=B64URL)
_GITLAB = "(?:pat|ptt|dt|rt|cbt|imt|soat|ffct|agent|oas|ft|wt)"

# Character classes written once: value characters for unquoted assignments, and whitespace
# spelled out (``\s`` differs between Python, RE2 and PCRE; ``\v`` means something else in PCRE).
_WS = r" \t\n\r\x0b\f"
_UNQUOTED = rf"[^{_WS}\"'\\`,;|&<>(){{}}\[\]]"
_QUOTE = r"\\*[\"']"
_SEP = r"[ \t]*(?:=>|:=|[:=])[ \t]*"


def _tok(name: str, pattern: str, anchors: tuple[str | bytes, ...], check: Check = _PLAIN) -> Rule:
    return Rule(name, pattern, check, anchors)


FAMILY_RULES: tuple[Rule, ...] = (
    _tok(
        "private-key",
        r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"
        r"((?:[A-Za-z0-9+/=]|\\+[nrt][ \t]*|(?:Proc-Type|DEK-Info|Version|Comment|Hash):[^\\\"\n]{0,200})*)"
        r"(?:-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----)?",
        (anc.DASH,),
        _pem_check,
    ),
    _tok("anthropic", r"sk-ant-[a-z]{2,12}[0-9]{2}-[A-Za-z0-9_-]{20,}", (anc.DASH,)),
    _tok("openai", r"sk-[A-Za-z0-9_-]{32,}", (anc.DASH,), token(valid=_openai_ok)),
    _tok("huggingface", r"hf_[A-Za-z0-9]{34}", (anc.UNDERSCORE,), _ALNUM_TOK),
    _tok("huggingface-org", r"api_org_[A-Za-z0-9]{34}", (anc.UNDERSCORE,), _ALNUM_TOK),
    _tok("github", r"gh[pousr]_[A-Za-z0-9]{36,}", (anc.UNDERSCORE,), token(max_len=260)),
    _tok("github-fine-grained", r"github_pat_[A-Za-z0-9_]{60,}", (anc.UNDERSCORE,)),
    _tok(
        "gitlab",
        rf"gl{_GITLAB}-[A-Za-z0-9_.-]{{20,}}",
        (anc.GITLAB,),
        token(trim=b".", valid=complex_enough),
    ),
    _tok(
        "aws-access-key-id",
        r"A(?:KIA|SIA|BIA|CCA)[A-Z2-7]{16}",
        (anc.UPPER_A,),
        token(body=ALNUM, valid=_not_example),
    ),
    _tok("google-api-key", r"AIza[A-Za-z0-9_-]{35}", (anc.UPPER_A,), _URL_TOK),
    _tok("google-oauth", r"ya29\.[A-Za-z0-9_-]{20,}", (anc.DOT,)),
    _tok("google-refresh-token", r"1//0[A-Za-z0-9_-]{30,}", (anc.SLASH,), token(valid=complex_enough)),
    _tok("slack", r"xox[abeoprs]-[A-Za-z0-9-]{10,}", (anc.DASH,), token(valid=_has_digit)),
    _tok("slack-app", r"xapp-[0-9]-[A-Za-z0-9-]{10,}", (anc.DASH,)),
    _tok(
        "slack-webhook",
        r"hooks\.slack\.com/((?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,})",
        (anc.SLASH,),
        token(1, left=False),
    ),
    _tok("stripe", r"[rs]k_(?:live|test|prod)_[A-Za-z0-9]{20,}", (anc.UNDERSCORE,)),
    _tok("stripe-webhook", r"whsec_[A-Za-z0-9+/]{24,}=*", (anc.UNDERSCORE,)),
    _tok("npm", r"npm_[A-Za-z0-9]{36}", (anc.UNDERSCORE,), _ALNUM_TOK),
    _tok("pypi", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}", (anc.DASH,)),
    _tok("groq", r"gsk_[A-Za-z0-9]{52}", (anc.UNDERSCORE,), _ALNUM_TOK),
    _tok("xai", r"xai-[A-Za-z0-9]{80}", (anc.DASH,), _ALNUM_TOK),
    _tok("sendgrid", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", (anc.DOT,), _URL_TOK),
    _tok("cerebras", r"csk-[A-Za-z0-9]{32,}", (anc.DASH,), token(valid=complex_enough)),
    _tok("perplexity", r"pplx-[A-Za-z0-9]{32,}", (anc.DASH,), token(valid=complex_enough)),
    _tok("shopify", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", (anc.UNDERSCORE,), _ALNUM_TOK),
    _tok("digitalocean", r"do[opr]_v1_[a-f0-9]{64}", (anc.UNDERSCORE,), _ALNUM_TOK),
    _tok("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", (anc.DOT,)),
)

_KEYED_WORDS = (b"pass", b"pwd", b"secret", b"token", b"key", b"credential", b"auth", b"cookie")
_ENV_WORDS = (b"PASS", b"PWD", b"SECRET", b"TOKEN", b"KEY", b"CREDENTIAL", b"AUTH")

CONTEXT_RULES: tuple[Rule, ...] = (
    Rule(
        "url-password",
        rf"://[^{_WS}/@\"'\\:?#\[\]]*:([^{_WS}/@\"'\\?#\[\]]+)@",
        token(1, left=False, valid=_url_password_ok),
        (anc.SLASH,),
    ),
    Rule(
        "aws-secret-access-key",
        rf"secret[_-]?(?:access[_-]?)?key[a-z_]*(?:{_QUOTE})?{_SEP}(?:{_QUOTE})?([a-z0-9/+]{{40}})",
        _aws_secret_check,
        (anc.KEYWORD_C,),
        keywords=(b"secret",),
        ci=True,
    ),
    Rule(
        "auth-header",
        rf"authorization(?:{_QUOTE})?[ \t]*[:=][ \t]*(?:{_QUOTE})?[ \t]*"
        r"(?:(?:bearer|basic|token|bot|digest|apikey|key|aws4-hmac-sha256)[ \t]+)?([a-z0-9._~+/-]{8,}=*)",
        _auth_header_check,
        (anc.KEYWORD_H,),
        keywords=(b"authorization",),
        ci=True,
    ),
    Rule(
        "bearer-token",
        r"bearer[ \t]+([a-z0-9._~+/-]{16,}=*)",
        token(1, left=False, valid=_header_value_ok),
        keywords=(b"bearer",),
        ci=True,
    ),
    Rule(
        "env-secret",
        rf"(?:PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH)[A-Z0-9_]*[ \t]*=[ \t]*((?:{_QUOTE})?)({_UNQUOTED}{{6,}})",
        _env_check,
        anc.KEYWORDS,
        # Keywords are found in the lower-cased line (shared with keyed-secret); the pattern
        # itself is case-sensitive: only UPPER_SNAKE names.
        keywords=tuple(k.lower() for k in _ENV_WORDS),
        anchor_ci=True,
    ),
    Rule(
        "keyed-secret",
        rf"(?:pass|pwd|secret|token|key|credential|auth|cookie)[a-z0-9_-]*(?:{_QUOTE})?{_SEP}"
        rf"(?:{_QUOTE}([^\"'\\{_WS}]{{6,}})|({_UNQUOTED}{{8,}}))",
        _keyed_check,
        anc.KEYWORDS,
        keywords=_KEYED_WORDS,
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
    return Rule(name, literal_source(form), _literal_check, keywords=(form,), keyword_lower=False)


def user_rule(name: str, regex: re.Pattern[bytes]) -> Rule:
    """A rule from the config. It redacts the group named ``secret`` if any, else the match."""
    group = regex.groupindex.get("secret", 0)

    def check(line: bytes, m: re.Match[bytes]) -> tuple[int, int] | None:
        s, e = m.span(group)
        return (s, e) if e > s else None

    return Rule(name, regex.pattern.decode("utf-8"), check, always=True)


BUILTIN_RULES: tuple[Rule, ...] = FAMILY_RULES + CONTEXT_RULES
BUILTIN_NAMES = frozenset(r.name for r in BUILTIN_RULES)
__all__ = ["BUILTIN_NAMES", "BUILTIN_RULES", "TOKEN_CHARS", "Rule", "known_value_rule", "user_rule"]
