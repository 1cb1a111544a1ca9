"""Credentials in text: token formats from detect-secrets' maintained plugins, plus what they lack.

Token formats come from Yelp's detect-secrets (its regex plugins: AWS, GitHub, GitLab, Slack,
Stripe, Twilio, SendGrid, JWTs, private keys, basic-auth URLs, ...), read at run time so an upgrade
of that package brings new formats here. detect-secrets costs ~0.2 s to import, so it is imported
only when the text holds a token-shaped run at all (`_TOKENISH`): a prompt like "Describe this"
never pays for it.

What that rule set does not cover is listed in `_EXTRA` (each with why): Hugging Face, npm and
Google API tokens, bare AWS secret keys, HTTP Authorization headers, and "password: value" labels
in the twelve languages the vocabulary covers. A keyword label only counts when its value looks like
a value and not like code (`password = getpass.getpass()` is a program, not a password).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

from .findings import Finding

# A run that could be a token: 16+ characters of token alphabet with a letter and a digit in it, or a
# known marker. Most prompts have none, and then detect-secrets is never imported.
# A run starts only where the previous character is not part of one (the lookbehinds), and the lookaheads
# look inside that run only: tried from every position, or looking through any non-space, a long text
# without spaces was rescanned from every position (quadratic: 20,000 characters took 25-55 s).
_RUN = r"[A-Za-z0-9_\-+/=.:]"
_TOKENISH = re.compile(
    rf"(?<!{_RUN})(?={_RUN}{{16,}})(?={_RUN}*[0-9])(?={_RUN}*[A-Za-z]){_RUN}{{16,}}"
    rf"|(?<!{_RUN})(?={_RUN}*[A-Z])(?={_RUN}*[a-z]){_RUN}{{20,}}|-----BEGIN|://[^\s/@:]+:[^\s/@]+@"
)

# Formats detect-secrets 1.5 lacks, or only finds with context it requires (an .npmrc line, quotes).
_EXTRA: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (what, re.compile(pattern))
    for what, pattern in (
        ("a Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}"),
        ("an npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
        ("a Google API key", r"\bAIza[0-9A-Za-z_\-]{35}"),
        ("an OpenAI or Anthropic API key", r"\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{20,}"),
        ("a Stripe key", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("an AWS access key", r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{16}\b"),
        ("a Slack token", r"\bxox[abprse]-[A-Za-z0-9-]{10,}"),
        ("a GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9_]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
        ("a private key block", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        ("a JSON web token", r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"),
        ("an HTTP authorization header",
         r"(?i)\bauthorization\s*[:=]\s*(?:basic|bearer|token|digest)\s+[A-Za-z0-9+/=._~-]{8,}"),
        ("an HTTP authorization header", r"(?i)\b(?:basic|bearer)\s+[A-Za-z0-9+/]{12,}={0,2}(?![A-Za-z0-9+/=])"),
        ("a URL with an embedded password", r"\b[a-z][a-z0-9+.-]{0,31}://[^\s/:@]+:[^\s/@]+@"),
        ("a connection string with a key", r"(?i)\b(?:accountkey|sharedaccesskey|password|pwd)=[^;\s]{6,}"),
    )
)
# A bare AWS secret access key: exactly 40 characters of base64 alphabet, mixed, high entropy.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")

# "password: hunter2" in the vocabulary's languages. The label must be followed by a separator and a value.
_LABELS = (
    r"password|passwd|passwort|pass ?word|pwd|pw|passcode|pass ?phrase|pin(?: ?code)?|api[_ -]?key|apikey|"
    r"access[_ -]?key|secret[_ -]?key|token|auth[_ -]?token|client[_ -]?secret|private[_ -]?key|"
    r"kennwort|zugangscode|geheimzahl|contrasena|contraseña|clave|mot de passe|mdp|code secret|"
    r"parola d'ordine|senha|wachtwoord|toegangscode|пароль|пин-код|密码|密碼|口令|パスワード|暗証番号|"
    r"كلمة المرور|كلمة السر|पासवर्ड|wpa2? ?key|wpa2?|psk"
)
# Long labels may end a compound ("wifipassword:", "adminPassword =": OCR drops spaces, code joins words);
# short ones (pw, pin, mdp, psk) must start a word.
_LONG_LABELS = (
    r"password|passwort|passcode|passphrase|kennwort|contrasena|contraseña|wachtwoord|пароль|apikey|secretkey"
)
_LABELLED = re.compile(
    rf"(?i)(?:(?<![\w])(?:{_LABELS})|(?<=[a-z])(?:{_LONG_LABELS}))(?:\s*\([^)]{{0,20}}\))?\s*"
    r"(?:[:=：]|\bis\b|\bist\b|\best\b|\bes\b|это|は|为|是|=>)\s*"
    r"(\"[^\"\n]{3,}\"|'[^'\n]{3,}'|[^\s,;]{3,})"
)
_CODE_VALUE = re.compile(
    r"^(?:[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+|[A-Za-z_][\w]*\s*\(|none|null|nil|true|false|undefined|"
    r"os\.|env\[|process\.env|getenv|input\(|\*+|x{3,}|\.{3}|<[^>]*>|\$\{|\{\{|%\(|\[redacted\]|redacted|"
    r"required|optional|string|str|int|bool|hidden|masked|\?+|-+|tbd|todo|n/?a|"
    # a program's keywords, not a value: "token = await getToken()", "password = new Password()"
    r"(?:await|new|get|let|const|var|function|async|this|self|return|yield|lambda|fn|func|def|typeof|require)\b)",
    re.I,
)
# How people write credentials in notes and chats: "password Marigold!Basin72", "pw Qamar#2018", "pin 4471",
# and "admin / K7#vQ2mp9Lz" next to a login word. The value must look like a password, not a word.
_LABEL_THEN_VALUE = re.compile(
    r"(?i)(?<![\w])(?:password|passwort|passwd|pwd|pw|passcode|kennwort|contrase[nñ]a|senha|wachtwoord|"
    r"mot de passe|пароль|密码|密碼|パスワード)\s+(\S{6,})"
)
_PIN_THEN_DIGITS = re.compile(r"(?i)(?<![\w])(?:pin|pin code|passcode|code pin|geheimzahl)\s*[:#]?\s*(\d{4,8})(?!\d)")
_LOGIN_PAIR = re.compile(r"(?<!\S)[\w.@+\-]{3,}\s+/\s+(\S{8,})(?!\S)")  # spaced: "admin / pass", never a path
_LOGIN_WORDS = re.compile(r"(?i)login|log-in|user|admin|account|password|passwort|\bpw\b|\bpwd\b|credentials|zugang")
_USER_AND_PASSWORD = re.compile(
    r"(?i)\b(?:user(?:name)?|login|benutzer(?:name)?|usuario|utilisateur|utente|usuário|gebruiker|логин)\s*[:=]?\s*"
    r"\S{1,128}\s*(?:/|,|\s)\s*(?:pass(?:word)?|pwd|pw|passwort|contrase[nñ]a|mot de passe|senha|пароль)\s*[:=]?\s*"
    r"(\S{3,})"
)
# A long random-looking run (mixed case and digits, high entropy) in text that talks keys or tokens:
# an API key whatever its vendor, or one OCR broke away from its prefix ("sk-proj -0BiNsPY...").
_KEYISH = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{32,}(?![A-Za-z0-9_\-])")
_KEY_CONTEXT = re.compile(r"(?i)key|token|secret|passw|credential|bearer|auth")
_CODES = re.compile(
    r"(?i)\b(?:door|gate|alarm|lock|safe|vault|garage|entry|access|pin|combination|combo)\b[^.\n]{0,20}?"
    r"\b(?:code|combination|pin|number)?\s*(?:is|:|=|was)\s*#?\d{3,8}\b"
)


# Cheap pre-checks: the label regexes only run on text that holds one of their words at all.
_LABEL_HINT = re.compile(
    r"pass|pwd|pw\b|pin|key|token|secret|kennwort|zugangscode|geheimzahl|contras|clave|mot de passe|mdp|"
    r"parola|senha|wachtwoord|toegangscode|пароль|пин|密码|密碼|口令|パスワード|暗証|كلمة|पासवर्ड|wpa|psk|"
    r"user|login|benutzer|usuario|utilisateur|utente|gebruiker|логин"
)
_VERB_HINT = re.compile(r"\b(?:is|ist|est|es)\b|это|は|为|是|=>")
_CODE_HINT = re.compile(r"code|combination|combo|pin")


@lru_cache(maxsize=1)
def _detect_secrets_rules() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(secret type, compiled regex) from detect-secrets' regex plugins; () when it is not installed."""
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:
        return ()
    rules: list[tuple[str, re.Pattern[str]]] = []
    # Public IPs are not credentials; keyword and entropy plugins work on source files, not prose.
    skip = {"Public IP (ipv4)", "Secret Keyword", "Base64 High Entropy String", "Hex High Entropy String"}
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        if secret_type in skip:
            continue
        for regex in getattr(cls, "denylist", ()) or ():
            rules.append((secret_type, regex))
    return tuple(rules)


def rule_count() -> int:
    """How many maintained token formats are loaded (for `config show` and tests)."""
    return len(_detect_secrets_rules()) + len(_EXTRA)


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _aws_secret(token: str) -> bool:
    classes = (any(c.islower() for c in token), any(c.isupper() for c in token), any(c.isdigit() for c in token))
    return all(classes) and _entropy(token) >= 4.2


def _random_looking(token: str) -> bool:
    """Upper and lower case and digits, spread like a random string (hex hashes and words are not)."""
    core = token.strip("-_")
    return (any(c.isupper() for c in core) and any(c.islower() for c in core) and sum(c.isdigit() for c in core) >= 2
            and _entropy(core) >= 4.3)


def _password_like(value: str) -> bool:
    """Three of: lower case, upper case, digit, symbol; or letters with digits. Never a plain word or number."""
    value = value.strip(".,;:!?\"'()")
    classes = (any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value),
               any(not c.isalnum() for c in value))
    return len(value) >= 6 and (sum(classes) >= 3 or (classes[2] and (classes[0] or classes[1]))) \
        and not _CODE_VALUE.match(value) and "://" not in value


def find_secrets(text: str) -> list[Finding]:
    """Credentials in `text` (the plain view: NFKC, case kept). Each kind is reported once."""
    kinds: list[str] = []

    def add(what: str) -> None:
        if what not in kinds:
            kinds.append(what)

    if _TOKENISH.search(text):
        for secret_type, regex in _detect_secrets_rules():
            if regex.search(text):
                add(f"a {secret_type.lower().replace('aws', 'AWS')} value")
        for what, regex in _EXTRA:
            if regex.search(text):
                add(what)
        for match in _AWS_SECRET.finditer(text):
            if _aws_secret(match.group(0)):
                add("what looks like a secret access key")
                break
    lower = text.lower()
    labelled = _LABEL_HINT.search(lower)
    if labelled and (any(ch in lower for ch in ":=：") or _VERB_HINT.search(lower)):
        for match in _LABELLED.finditer(text):
            value = match.group(1).strip("\"'")
            if len(value) >= 3 and not _CODE_VALUE.match(value):
                add("a password or secret value")
                break
    if labelled and any(not _CODE_VALUE.match(m.group(1)) for m in _USER_AND_PASSWORD.finditer(text)):
        add("a username and password")
    if _TOKENISH.search(text) and _KEY_CONTEXT.search(text) and any(
        _random_looking(m.group(0)) for m in _KEYISH.finditer(text)
    ):
        add("a high-entropy key or token")
    if labelled and (any(_password_like(m.group(1)) for m in _LABEL_THEN_VALUE.finditer(text))
                     or _PIN_THEN_DIGITS.search(text)):
        add("a password or secret value")
    if "/" in text and _LOGIN_WORDS.search(text) and any(
        _password_like(m.group(1)) and sum(map(str.isalpha, m.group(1))) >= 2 for m in _LOGIN_PAIR.finditer(text)
    ):
        add("a login and its password")
    if _CODE_HINT.search(lower) and _CODES.search(text):
        add("a door, alarm or lock code")
    return [Finding("credentials", "secret", what) for what in kinds]


__all__ = ["find_secrets", "rule_count"]
