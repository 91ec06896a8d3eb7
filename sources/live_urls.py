"""Stream addresses of live cameras: credentials kept off the command line, and redaction for logs.

A camera's password must never appear where other people can read it: the process list and shell
history (the command line), log files, error messages. So:

* an address given to ``semiostream publish`` may not carry a password (``rtsp://user:pw@cam/...``)
  or a secret query parameter (``srt://...?passphrase=...``): :func:`check_no_secret` refuses it;
* the credentials come from an environment variable or a file (:func:`load_credentials`) and are
  put into the address only when it is opened (:func:`with_credentials`);
* every message that names a stream address goes through :func:`redact`, which replaces user
  information and secret query values with ``***`` wherever an address appears in the text (FFmpeg's
  own error messages repeat the address they were given).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

#: query parameters that hold secrets (SRT passphrase, tokens of HTTP cameras ...)
SECRET_PARAMS = frozenset({"passphrase", "password", "passwd", "pwd", "pass", "token", "secret", "auth",
                           "access_token", "apikey", "api_key"})

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@'\"]+)@")
_SECRET_QUERY = re.compile(r"(?P<key>[?&;](?:" + "|".join(sorted(SECRET_PARAMS)) + r")=)(?P<value>[^&;\s'\"]*)",
                           re.IGNORECASE)


class CredentialError(ValueError):
    """Credentials in the wrong place or unreadable; the message says where to put them."""


def redact(text: str) -> str:
    """``text`` with the user information and secret query values of every address in it replaced by
    ``***`` (``rtsp://admin:pw@cam:554/s?token=x`` -> ``rtsp://***@cam:554/s?token=***``)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}***", text)


def check_no_secret(url: str) -> None:
    """Refuse an address that carries a password or a secret query parameter.

    Raises:
        CredentialError: naming the (redacted) address and how to pass the secret instead.
    """
    parts = urlsplit(url)
    secret_params = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_PARAMS]
    if parts.password is None and not secret_params:
        return
    what = "a password" if parts.password is not None else f"the secret parameter {secret_params[0]!r}"
    raise CredentialError(
        f"{redact(url)} carries {what}, which every user of this machine can read in the process list and "
        "the shell history; remove it from the address and put `user:password` (SRT: the passphrase) in a "
        "file readable only by you (--credentials-file FILE) or in an environment variable "
        "(--credentials-env NAME)")


@dataclass(frozen=True)
class Credentials:
    """A camera login: ``user`` (may be empty) and ``secret`` (password, or SRT passphrase).

    Its ``repr`` never shows the secret."""

    user: str
    secret: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, secret=***)"

    @classmethod
    def parse(cls, text: str, origin: str) -> Credentials:
        """``user:password`` (the password may contain ``:``) or a bare secret (password or passphrase)."""
        text = text.strip("\r\n")
        if not text:
            raise CredentialError(f"{origin} is empty; it should hold `user:password` (SRT: the passphrase)")
        user, sep, secret = text.partition(":")
        return cls(user, secret) if sep else cls("", text)


def load_credentials(env: str | None = None, file: str | os.PathLike | None = None) -> Credentials | None:
    """Read credentials from the environment variable named ``env`` or from ``file`` (one line,
    ``user:password``); None when neither is given.

    Raises:
        CredentialError: both given, the variable unset, the file missing, unreadable or readable by
            other users (``chmod 600 FILE``).
    """
    if env and file:
        raise CredentialError("give --credentials-env or --credentials-file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise CredentialError(f"environment variable {env} is not set; export {env}='user:password' "
                                  "before starting the publisher")
        return Credentials.parse(value, f"environment variable {env}")
    if file:
        path = Path(file)
        try:
            st = path.stat()
        except OSError as e:
            raise CredentialError(f"credentials file {path}: {e.strerror}; create it with one line "
                                  "`user:password` and `chmod 600` it") from None
        if not stat.S_ISREG(st.st_mode):
            raise CredentialError(f"credentials file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise CredentialError(f"credentials file {path} can be read by other users "
                                  f"(mode {stat.S_IMODE(st.st_mode):o}); run `chmod 600 {path}`")
        try:
            text = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise CredentialError(f"credentials file {path} cannot be read ({e})") from None
        return Credentials.parse(text[0] if text else "", f"credentials file {path}")
    return None


def with_credentials(url: str, creds: Credentials | None) -> str:
    """``url`` with ``creds`` put in: SRT's ``passphrase`` query parameter for ``srt://``, the user
    information (percent-encoded) for every other scheme. Never log the result; log :func:`redact`."""
    if creds is None:
        return url
    parts = urlsplit(url)
    if parts.scheme == "srt":
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "passphrase"]
        query.append(("passphrase", creds.secret))
        return urlunsplit(parts._replace(query=urlencode(query)))
    user = creds.user or parts.username or ""
    if not user:
        raise CredentialError(f"{redact(url)}: the credentials hold no user name; write `user:password`")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(creds.secret, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
