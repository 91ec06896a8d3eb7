"""Camera logins: refused on the command line, read from a variable or a private file, put into the
address only when it is opened, and redacted from every message."""

from __future__ import annotations

import pytest

from semiostream.sources.live_urls import (
    CredentialError,
    Credentials,
    check_no_secret,
    load_credentials,
    redact,
    with_credentials,
)


@pytest.mark.parametrize("text,expected", [
    ("rtsp://admin:pw@cam-07:554/s1", "rtsp://***@cam-07:554/s1"),
    ("error opening 'rtsp://u:p%40ss@10.0.0.7/live?token=abc&x=1': 401", "error opening 'rtsp://***@10.0.0.7/live?token=***&x=1': 401"),
    ("srt://cam:9000?mode=caller&passphrase=topsecret1", "srt://cam:9000?mode=caller&passphrase=***"),
    ("rtsp://cam-07/s1 and http://user@cam/x", "rtsp://cam-07/s1 and http://***@cam/x"),
    ("no address here", "no address here"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_secrets_on_the_command_line_are_refused_without_being_repeated():
    check_no_secret("rtsp://cam-07:554/stream1")
    check_no_secret("rtsp://viewer@cam-07/stream1")  # a user name alone is no secret
    for url in ("rtsp://admin:hunter2@cam/s", "srt://cam:9000?passphrase=hunter2hunter2"):
        with pytest.raises(CredentialError, match="--credentials-file") as e:
            check_no_secret(url)
        assert "hunter2" not in str(e.value)


def test_credentials_from_environment_and_private_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAM07_LOGIN", "viewer:p@ss:word")
    c = load_credentials(env="CAM07_LOGIN")
    assert (c.user, c.secret) == ("viewer", "p@ss:word") and "p@ss" not in repr(c)
    with pytest.raises(CredentialError, match="CAM_MISSING is not set"):
        load_credentials(env="CAM_MISSING")
    f = tmp_path / "cam.login"
    f.write_text("viewer:s3cret\n")
    f.chmod(0o644)
    with pytest.raises(CredentialError, match="chmod 600"):
        load_credentials(file=f)
    f.chmod(0o600)
    assert load_credentials(file=f) == Credentials("viewer", "s3cret")
    with pytest.raises(CredentialError, match="not both"):
        load_credentials(env="CAM07_LOGIN", file=f)
    with pytest.raises(CredentialError, match="No such file"):
        load_credentials(file=tmp_path / "missing")
    assert load_credentials() is None


def test_credentials_go_into_the_address_encoded():
    c = Credentials("viewer", "p@ss:w/rd%1")
    url = with_credentials("rtsp://cam-07:554/s1", c)
    assert url == "rtsp://viewer:p%40ss%3Aw%2Frd%251@cam-07:554/s1"
    assert redact(url) == "rtsp://***@cam-07:554/s1"
    assert with_credentials("rtsp://[fe80::1]:554/s", c).startswith("rtsp://viewer:p%40ss%3Aw%2Frd%251@[fe80::1]:554/")
    srt = with_credentials("srt://cam:9000?mode=caller", Credentials("", "a-long-passphrase"))
    assert srt == "srt://cam:9000?mode=caller&passphrase=a-long-passphrase"
    assert with_credentials("rtsp://cam/s", None) == "rtsp://cam/s"
    with pytest.raises(CredentialError, match="no user name"):
        with_credentials("rtsp://cam/s", Credentials("", "pw"))
