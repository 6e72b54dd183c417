"""Each rail words its own failures for the payer, by its own codes, behind the registry."""

import pytest

from malipo.providers import registry
from malipo.providers.airtel import codes as air
from malipo.providers.base import ProviderUnavailable


@pytest.mark.parametrize(
    ("network", "code", "words"),
    [
        (registry.MPESA, 1032, "You cancelled the M-Pesa prompt."),
        (registry.MPESA, 1, "Your M-Pesa balance is too low for this payment."),
        (registry.MPESA, 2001, "The M-Pesa PIN was wrong."),
        (
            registry.AIRTEL,
            air.NOT_ENOUGH_BALANCE,
            "Your Airtel Money balance is too low for this payment.",
        ),
        (registry.AIRTEL, air.WRONG_PIN, "The Airtel Money PIN was wrong."),
    ],
)
def test_known_codes_read_in_the_rails_own_words(network: str, code: int, words: str) -> None:
    assert registry.payer_message(network, code, "ignored") == words


def test_an_unknown_code_gives_the_rails_description() -> None:
    assert registry.payer_message(registry.MPESA, 9999, "System busy") == (
        "M-Pesa did not take the payment: System busy"
    )
    assert registry.payer_message(registry.AIRTEL, air.DECLINED, "Refused (DP00800001008)") == (
        "Airtel Money did not take the payment: Refused (DP00800001008)"
    )
    assert registry.payer_message(registry.MPESA, None, None) == (
        "M-Pesa did not take the payment: no reason given"
    )


def test_an_airtel_failure_is_never_worded_as_m_pesa() -> None:
    for code in (air.NO_ANSWER, air.EXPIRED_CODE, air.REFUSED_PUSH):
        assert "M-Pesa" not in registry.payer_message(registry.AIRTEL, code, "x")


def test_a_network_without_a_connector_has_no_words() -> None:
    with pytest.raises(ProviderUnavailable):
        registry.payer_message("63907", 1, "x")
