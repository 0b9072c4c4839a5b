"""Seeded generator of fake-but-valid-shaped secrets, and the contexts to plant them in.

Nothing here is a real credential and no literal token is committed: every value is built
at test time from a seeded RNG, with the family's exact charset and length and, where the
family has one, a valid checksum (GitHub and npm tokens end in the base62 CRC32 of their
random part). ``Secret.fragments`` are the substrings that must not survive redaction.
"""

from __future__ import annotations

import base64
import json
import random
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"
HEXDIGITS = "0123456789abcdef"
PW_CHARS = ALNUM + "!%^*_~-."


@dataclass(frozen=True)
class Secret:
    family: str  # the rule expected to fire
    text: str  # how the secret is written (a token, or a URL / assignment carrying it)
    fragments: tuple[str, ...]  # substrings that must be gone from the output


class Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def rand_bytes(self, n: int) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def password(self, n: int = 16) -> str:
        # Real generated passwords: mixed case and digits.
        core = self.chars(PW_CHARS, n - 3)
        return core + self.chars(string.ascii_uppercase, 1) + self.chars(string.digits, 1) + "q"


def base62_crc32(data: str) -> str:
    n = zlib.crc32(data.encode())
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = BASE62[r] + out
    return out.rjust(6, "0")


def checksummed(g: Gen, prefix: str) -> str:
    """GitHub/npm token shape: prefix + 30 random base62 + 6-char base62 CRC32 of them."""
    body = g.chars(ALNUM, 30)
    return prefix + body + base62_crc32(body)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(g: Gen) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = {"sub": g.chars(string.digits, 10), "name": g.chars(string.ascii_letters, 8), "iat": 1700000000}
    return f"{header}.{b64url(json.dumps(payload).encode())}.{b64url(g.rand_bytes(32))}"


def pem(g: Gen, kind: str, nbytes: int = 600) -> tuple[str, tuple[str, ...]]:
    body = base64.b64encode(g.rand_bytes(nbytes)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    label = f"{kind} PRIVATE KEY".strip() if kind != "PGP" else "PGP PRIVATE KEY BLOCK"
    sep = "\n\n" if kind == "PGP" else "\n"
    text = f"-----BEGIN {label}-----{sep}" + "\n".join(lines) + f"\n-----END {label}-----\n"
    return text, tuple(x for x in lines if len(x) >= 16)


def token_secret(family: str, value: str) -> Secret:
    return Secret(family, value, (value,))


def _openai(g: Gen) -> list[Secret]:
    legacy = "sk-" + g.chars(ALNUM, 20) + "T3BlbkFJ" + g.chars(ALNUM, 20)
    proj = "sk-proj-" + g.chars(URLSAFE, 74) + "T3BlbkFJ" + g.chars(URLSAFE, 74)
    svc = "sk-svcacct-" + g.chars(URLSAFE, 74) + "T3BlbkFJ" + g.chars(URLSAFE, 74)
    admin = "sk-admin-" + g.chars(URLSAFE, 74) + "T3BlbkFJ" + g.chars(URLSAFE, 74)
    early = "sk-proj-" + g.chars(ALNUM, 48)
    none = "sk-None-" + g.chars(ALNUM, 48)
    router = "sk-or-v1-" + g.chars(HEXDIGITS, 64)
    deepseek = "sk-" + g.chars(HEXDIGITS, 32)
    return [token_secret("openai", v) for v in (legacy, proj, svc, admin, early, none, router, deepseek)]


def _anthropic(g: Gen) -> list[Secret]:
    return [
        token_secret("anthropic", f"sk-ant-{kind}-" + g.chars(URLSAFE, 93) + "AA")
        for kind in ("api03", "admin01", "oat01", "ort01")
    ]


def _pem(g: Gen) -> list[Secret]:
    out = []
    for kind in ("RSA", "EC", "OPENSSH", "", "ENCRYPTED", "DSA", "PGP"):
        text, frags = pem(g, kind, 300 if kind == "EC" else 900)
        out.append(Secret("private-key", text, frags))
    return out


def _gcp_service_account(g: Gen) -> Secret:
    key, frags = pem(g, "", 1200)
    key_id = g.chars(HEXDIGITS, 40)
    doc = {
        "type": "service_account",
        "project_id": "demo-project-123",
        "private_key_id": key_id,
        "private_key": key,
        "client_email": "svc@demo-project-123.iam.gserviceaccount.com",
        "client_id": g.chars(string.digits, 21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }
    return Secret("private-key", json.dumps(doc, indent=2), (key_id, *frags))


def _context(g: Gen) -> list[Secret]:
    pw = [g.password() for _ in range(12)]
    aws_secret = g.chars(B64, 40)
    basic = base64.b64encode(f"admin:{pw[5]}".encode()).decode()
    bearer = g.chars(URLSAFE, 40) + "9"
    return [
        Secret("url-password", f"postgres://app_user:{pw[0]}@db.internal:5432/prod", (pw[0],)),
        Secret("url-password", f"mongodb+srv://root:{pw[1]}@cluster0.example.net/test", (pw[1],)),
        Secret("url-password", f"redis://:{pw[2]}@cache:6379/0", (pw[2],)),
        Secret("url-password", f"https://deploy:{pw[3]}@git.example.com/repo.git", (pw[3],)),
        Secret("url-password", f"jdbc:mysql://dbadmin:{pw[4]}@mysql.local:3306/db", (pw[4],)),
        Secret("auth-header", f"Authorization: Basic {basic}", (basic,)),
        Secret("auth-header", f"Authorization: Bearer {bearer}", (bearer,)),
        Secret("aws-secret-access-key", f"aws_secret_access_key = {aws_secret}", (aws_secret,)),
        Secret("env-secret", f"DB_PASSWORD={pw[6]}", (pw[6],)),
        Secret("env-secret", f"MY_SERVICE_TOKEN={pw[7]}", (pw[7],)),
        Secret("keyed-secret", f"client_secret: {pw[8]}", (pw[8],)),
        Secret("keyed-secret", f'password = "{pw[9]}"', (pw[9],)),
        Secret("keyed-secret", f"--api-key={pw[10]}", (pw[10],)),
        Secret("keyed-secret", f"apiKey: '{pw[11]}'", (pw[11],)),
    ]


def family_secrets(g: Gen) -> list[Secret]:
    """At least one secret of every family the redactor claims to cover."""
    out: list[Secret] = []
    out += _openai(g)
    out += _anthropic(g)
    out += [token_secret("huggingface", "hf_" + g.chars(string.ascii_letters, 34))]
    out += [token_secret("huggingface-org", "api_org_" + g.chars(string.ascii_letters, 34))]
    out += [token_secret("github", checksummed(g, p + "_")) for p in ("ghp", "gho", "ghu", "ghs", "ghr")]
    out += [
        token_secret("github-fine-grained", "github_pat_" + g.chars(ALNUM, 22) + "_" + g.chars(ALNUM, 59))
    ]
    out += [token_secret("gitlab", p + g.chars(URLSAFE, 20) + "1") for p in ("glpat-", "glptt-", "gldt-")]
    out += [
        token_secret("aws-access-key-id", p + g.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
        for p in ("AKIA", "ASIA")
    ]
    out += [token_secret("google-api-key", "AIza" + g.chars(URLSAFE, 35))]
    out += [token_secret("google-oauth", "ya29.a0" + g.chars(URLSAFE, 150))]
    out += [token_secret("google-refresh-token", "1//0" + g.chars(URLSAFE, 100))]
    digits = string.digits
    out += [
        token_secret("slack", f"xoxb-{g.chars(digits, 11)}-{g.chars(digits, 13)}-{g.chars(ALNUM, 24)}"),
        token_secret(
            "slack",
            f"xoxp-{g.chars(digits, 11)}-{g.chars(digits, 11)}-{g.chars(digits, 13)}-{g.chars(HEXDIGITS, 32)}",
        ),
        token_secret(
            "slack-app",
            f"xapp-1-A{g.chars(digits + 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 10)}-{g.chars(digits, 13)}-{g.chars(HEXDIGITS, 64)}",
        ),
    ]
    hook = f"T{g.chars(ALNUM.upper(), 8)}/B{g.chars(ALNUM.upper(), 8)}/{g.chars(ALNUM, 24)}"
    out += [Secret("slack-webhook", f"https://hooks.slack.com/services/{hook}", (hook,))]
    out += [
        token_secret("stripe", p + g.chars(ALNUM, 99 if "live" in p else 24))
        for p in ("sk_live_", "rk_test_", "sk_test_")
    ]
    out += [token_secret("stripe-webhook", "whsec_" + g.chars(ALNUM, 32))]
    out += [token_secret("npm", checksummed(g, "npm_"))]
    out += [token_secret("pypi", "pypi-AgEIcHlwaS5vcmc" + g.chars(URLSAFE, 150))]
    out += [token_secret("groq", "gsk_" + g.chars(ALNUM, 52))]
    out += [token_secret("xai", "xai-" + g.chars(ALNUM, 80))]
    out += [token_secret("sendgrid", "SG." + g.chars(URLSAFE, 22) + "." + g.chars(URLSAFE, 43))]
    out += [token_secret("cerebras", "csk-" + g.chars(string.ascii_lowercase + digits, 48))]
    out += [token_secret("perplexity", "pplx-" + g.chars(ALNUM, 48))]
    out += [token_secret("shopify", "shpat_" + g.chars(HEXDIGITS, 32))]
    out += [token_secret("digitalocean", "dop_v1_" + g.chars(HEXDIGITS, 64))]
    out += [token_secret("jwt", jwt(g))]
    out += _pem(g)
    out += [_gcp_service_account(g)]
    out += _context(g)
    return out


# -- contexts -------------------------------------------------------------------------------
# Each context turns a secret's text into one JSONL record (a Python object) shaped like what
# Claude Code, Codex or Pi write. json.dumps(separators=(",", ":")) mimics JSON.stringify.

Context = Callable[[str], object]


def _claude(content: object, **extra: object) -> dict[str, object]:
    return {
        "parentUuid": "5b0ad1d4-4a1e-4f4e-9d7e-3c2b1a0f9e8d",
        "isSidechain": False,
        "type": "user",
        "message": {"role": "user", "content": content},
        "uuid": "0f3c2b1a-9d7e-4f4e-8a1e-5b0ad1d44a1e",
        "timestamp": "2026-02-23T11:41:04.709Z",
        **extra,
    }


CONTEXTS: dict[str, Context] = {
    "prompt": lambda t: _claude(f"here is my key {t}, please use it."),
    "prose-period": lambda t: _claude(f"The value is {t}."),
    "prose-paren": lambda t: _claude(f"(see {t})"),
    "quoted-single": lambda t: _claude(f"token='{t}'"),
    "bash": lambda t: {
        "type": "assistant",
        "message": {
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "Bash",
                    "input": {"command": f"export SOME_VAR={t} && ./deploy.sh --verbose"},
                }
            ]
        },
    },
    "dotenv-result": lambda t: _claude(
        [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01XYZ",
                "content": f"APP_ENV=prod\nSECRET_THING={t}\nDEBUG=0\n",
            }
        ],
        toolUseResult={
            "stdout": f"APP_ENV=prod\nSECRET_THING={t}\nDEBUG=0\n",
            "stderr": "",
            "interrupted": False,
        },
    ),
    "line-start": lambda t: _claude(
        [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01XYZ",
                "content": f"$ gh auth token\n{t}\n$ echo done",
            }
        ]
    ),
    "tab-start": lambda t: _claude(f"name\tvalue\nprod\t{t}\tactive"),
    "json-config": lambda t: _claude(
        [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01XYZ",
                "content": json.dumps({"service": {"credential": t, "region": "eu-west-1"}}, indent=2),
            }
        ]
    ),
    "json-twice": lambda t: {
        "type": "response_item",
        "payload": {
            "type": "function_call_output",
            "output": json.dumps({"output": json.dumps({"value": t})}),
        },
    },
    "json-key": lambda t: {
        "type": "assistant",
        "message": {"content": [{"type": "tool_use", "input": {t: True}}]},
    },
    "yaml": lambda t: _claude(f"services:\n  api:\n    environment:\n      - VALUE={t}\n    image: app:1.2"),
    "python": lambda t: _claude(f'```python\nclient = Client(\n    key="{t}",\n)\n```'),
    "js": lambda t: _claude(f"const cfg = {{ value: `{t}`, retries: 3 }};"),
    "go": lambda t: _claude(f'cfg := Config{{Key: "{t}"}}'),
    "url-query": lambda t: _claude(f"GET https://api.example.com/v1/items?key={t}&page=2"),
    "url-encoded": lambda t: _claude(f"redirect=%2Fcb%3Ftoken%3D{t}%26x%3D1"),
    "ansi": lambda t: _claude(f"\x1b[1;32m{t}\x1b[0m"),
    "unicode-escape": lambda t: {"text": f"«{t}»", "note": "<b>"},
    "codex-exec": lambda t: {
        "timestamp": "2026-02-23T11:41:31.123Z",
        "type": "response_item",
        "payload": {
            "type": "function_call",
            "name": "shell",
            "arguments": json.dumps({"command": ["bash", "-lc", f"echo {t}"]}),
        },
    },
    "pi-tool-result": lambda t: {
        "type": "message",
        "id": "a1b2c3d4",
        "message": {
            "role": "toolResult",
            "toolCallId": "call_abc",
            "content": [{"type": "text", "text": f"stdout:\n{t}\n"}],
        },
    },
}


#: Contexts that put the text under a secret-named key: anything there is redacted on purpose.
SECRET_KEYED_CONTEXTS = frozenset({"quoted-single", "dotenv-result", "json-config"})


def dumps(record: object, *, ascii_only: bool = False) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=ascii_only).encode() + b"\n"


def escaped_forms(fragment: str) -> set[str]:
    once = json.dumps(fragment)[1:-1]
    return {fragment, once, json.dumps(once)[1:-1]}


# -- negatives ------------------------------------------------------------------------------


def negatives(g: Gen) -> list[str]:
    """Strings that look random or secret-ish but must never be redacted."""
    uuid = "-".join(g.chars(HEXDIGITS, n) for n in (8, 4, 4, 4, 12))
    out = [
        g.chars(HEXDIGITS, 40),  # git SHA
        f"commit {g.chars(HEXDIGITS, 40)}\nAuthor: Dev <dev@example.com>",
        uuid,
        f"sha256:{g.chars(HEXDIGITS, 64)}",
        f"toolu_01{g.chars(ALNUM, 22)}",
        f"msg_01{g.chars(ALNUM, 22)}",
        f"req_011C{g.chars(ALNUM, 20)}",
        f"call_{g.chars(ALNUM, 24)}",
        f'"integrity": "sha512-{base64.b64encode(g.rand_bytes(64)).decode()}"',
        "token: string;",
        "apiKey?: string",
        "const apiKey = process.env.ANTHROPIC_API_KEY;",
        "password = base64.b64decode(data)",
        "private_key = Ed25519PrivateKey.generate()",
        '"input_tokens": 123456789, "cache_read_input_tokens": 98765432',
        "MAX_TOKENS=100000000",
        "TOKENIZERS_PARALLELISM=false",
        "export ANTHROPIC_API_KEY=sk-ant-...",
        "postgres://user:password@localhost:5432/db",
        "postgres://user:${PGPASSWORD}@localhost/db",
        "Authorization: Bearer ${TOKEN}",
        "AKIAIOSFODNN7EXAMPLE",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        '"apiKey": "YOUR_API_KEY"',
        "qpdf --password=mypassword --decrypt in.pdf out.pdf",
        "https://example.com/path?page=2&sort=desc",
        "git@github.com:owner/repo.git",
        "ssh://git@github.com:22/owner/repo.git",
        f"docker pull python@sha256:{g.chars(HEXDIGITS, 64)}",
        "task-runner-skeleton-for-unit-tests-1234",
    ]
    return out


def signature(g: Gen) -> str:
    return base64.b64encode(g.rand_bytes(g.rng.randint(200, 1200))).decode()


def image_b64(g: Gen, size: int = 200_000) -> str:
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + g.rand_bytes(size)).decode()
