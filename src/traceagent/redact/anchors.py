"""Anchors for the pure-stdlib engine.

The stdlib engine flags a line for a rule when the line contains a match of one of the rule's
anchors. An anchor must therefore match inside *every* match of its rule (a superset). Each
anchor costs one ``re`` pass over the chunk (about 1 GB/s when the pattern starts with a
literal), so anchors of many rules are merged around one separator byte that is rarer than
the letters of the prefixes, with look-behinds for the rest. Look-behinds are fine here: only
Python's ``re`` ever runs these. ``tests/redact/test_redact_engines.py`` checks that the stdlib
engine gives the same output as the set engines.
"""

from __future__ import annotations

# Token prefixes that end in "-": sk- (OpenAI, Anthropic, Cerebras csk-), xox?- / xapp- (Slack),
# xai-, pplx-, pypi-, and the fifth dash of "-----BEGIN". The class check before the
# alternatives skips most dashes at once.
DASH = (
    r"-(?<=[kabeoprsix-]-)(?:(?<=sk-)|(?<=xox[abeoprs]-)|(?<=xapp-)|(?<=xai-)|(?<=pplx-)"
    r"|(?<=pypi-)|(?<=-----)BEGIN)"
)
# Token prefixes that end in "_": hf_, api_org_, gh?_, github_pat_, npm_, sk_live_/rk_test_
# (Stripe), gsk_ (Groq), whsec_, shpat_ (Shopify), dop_v1_ (DigitalOcean).
UNDERSCORE = (
    r"_(?<=[fgpoustrmkca1]_)(?:(?<=hf_)|(?<=api_org_)|(?<=gh[pousr]_)|(?<=github_pat_)|(?<=npm_)"
    r"|(?<=[rs]k_)(?:live|test|prod)_|(?<=gsk_)|(?<=whsec_)|(?<=shp(?:at|ca|pa|ss)_)|(?<=do[opr]_v1_))"
)
# ya29. (Google OAuth), SG. (SendGrid), and the ".eyJ" between a JWT's header and payload.
DOT = r"\.(?:eyJ|(?<=ya29\.)|(?<=SG\.))"
# "://" (URL passwords), 1//0 (Google refresh tokens), hooks.slack.com/ (webhooks).
SLASH = r"/(?:(?<=:/)/|(?<=1/)/0|(?<=hooks\.slack\.com/))"
# AWS key ids and Google API keys.
UPPER_A = r"A(?:KIA|SIA|BIA|CCA|Iza)"
GITLAB = r"gl(?:pat|ptt|dt|rt|cbt|imt|soat|ffct|agent|oas|ft|wt)-"

# Keyword rules, searched in the lower-cased chunk: keyword, rest of the key name, separator
# and the first 6 characters of the value. A superset of keyed-secret, env-secret and
# aws-secret-access-key, and far more selective than the keyword alone ("output_tokens":12).
_WS = r" \t\n\r\x0b\f"
_QUOTE = r"\\*[\"']"
_REST = (
    rf"[a-z0-9_-]*(?:{_QUOTE})?[ \t]*(?:=>|:=|[:=])[ \t]*"
    rf"(?:{_QUOTE}[^\"'\\{_WS}]{{6}}|[^{_WS}\"'\\`,;|&<>(){{}}\[\]]{{6}})"
)
#: token, key, cookie (grouped on their "k").
KEYWORD_K = rf"k(?:(?<=tok)en|ey|(?<=cook)ie){_REST}"
#: secret, credential (grouped on their "c").
KEYWORD_C = rf"c(?:(?<=sec)ret|redential){_REST}"
#: pass(word), pwd.
KEYWORD_P = rf"p(?:ass|wd){_REST}"
#: auth(_token)… and "authorization" for the Authorization-header rule.
KEYWORD_H = rf"h(?<=auth)(?:orization|{_REST})"
KEYWORDS = (KEYWORD_K, KEYWORD_C, KEYWORD_P, KEYWORD_H)
