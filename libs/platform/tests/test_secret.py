import logging

import pytest

from medstation_platform.secret import Secret


def test_the_value_is_read_on_purpose() -> None:
    assert Secret("s3cr3t").get_secret_value() == "s3cr3t"


def test_repr_str_and_formatting_show_asterisks(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("s3cr3t")

    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("%s %r %s", secret, secret, [secret])
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", caplog.text):
        assert "s3cr3t" not in shown
    assert str(secret) == "**********"


def test_equal_values_make_equal_secrets() -> None:
    assert Secret("a") == Secret("a")
    assert hash(Secret("a")) == hash(Secret("a"))
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
