"""BANKING77 (Casanueva et al. 2020): single-turn banking support queries, 77 intents.

Source "chats". Sentiment None: intent data carries no sentiment, and calling every
query neutral would teach the model that "my card was stolen!" is neutral.

Risks come from the intent. Each query has exactly one intent, so for the risks we map,
an intent outside the risk's set means the risk is absent - except for intents listed as
ambiguous for that risk, which stay unknown. Vouched for on every row: fraud, churn,
service_outage, legal_regulatory, product_safety, toxicity. financial_distress is never
vouched for: no intent says it, and "declined payment" or "pending top-up" queries may
well come from a customer short of money.

- fraud True: compromised_card, card_payment_not_recognised,
  cash_withdrawal_not_recognised, direct_debit_payment_not_recognised (someone else is,
  or may be, using the customer's account). Unknown: lost_or_stolen_card,
  lost_or_stolen_phone (a theft that may or may not lead to misuse) and
  extra_charge_on_statement (some of these say "I didn't authorize that charge").
- churn True: terminate_account. No other intent is about leaving.
- service_outage True: card_not_working, virtual_card_not_working, top_up_failed,
  failed_transfer (the bank's service fails to do its job). Unknown: intents where a
  failure or delay may be an outage or a deliberate decision or normal processing time -
  contactless_not_working (often "how do I enable it"), the declined_* intents (limits,
  funds, fraud blocks), pending_*, balance_not_updated_*, transfer_not_received_by_recipient,
  top_up_reverted, reverted_card_payment?, beneficiary_not_allowed, card_swallowed,
  wrong_amount_of_cash_received, transaction_charged_twice, lost_or_stolen_phone
  ("I cannot access the app").
- legal_regulatory, product_safety, toxicity: False for all. The identity and
  source-of-funds checks (verify_source_of_funds, why_verify_identity, ...) are routine
  compliance steps, not a legal or regulatory risk; the queries were written by
  crowd workers to a script and are not abusive.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, read_csv_records, require_file
from tonewatch.contracts import Risk

NAME: Final = "banking77"
LICENCE: Final = "CC BY 4.0"
CSV_PATH: Final = "banking77/train.csv"
# The 77 intents, spelled as in the data (including "Refund_not_showing_up" and the "?").
INTENTS: Final = frozenset(
    {
        "Refund_not_showing_up",
        "activate_my_card",
        "age_limit",
        "apple_pay_or_google_pay",
        "atm_support",
        "automatic_top_up",
        "balance_not_updated_after_bank_transfer",
        "balance_not_updated_after_cheque_or_cash_deposit",
        "beneficiary_not_allowed",
        "cancel_transfer",
        "card_about_to_expire",
        "card_acceptance",
        "card_arrival",
        "card_delivery_estimate",
        "card_linking",
        "card_not_working",
        "card_payment_fee_charged",
        "card_payment_not_recognised",
        "card_payment_wrong_exchange_rate",
        "card_swallowed",
        "cash_withdrawal_charge",
        "cash_withdrawal_not_recognised",
        "change_pin",
        "compromised_card",
        "contactless_not_working",
        "country_support",
        "declined_card_payment",
        "declined_cash_withdrawal",
        "declined_transfer",
        "direct_debit_payment_not_recognised",
        "disposable_card_limits",
        "edit_personal_details",
        "exchange_charge",
        "exchange_rate",
        "exchange_via_app",
        "extra_charge_on_statement",
        "failed_transfer",
        "fiat_currency_support",
        "get_disposable_virtual_card",
        "get_physical_card",
        "getting_spare_card",
        "getting_virtual_card",
        "lost_or_stolen_card",
        "lost_or_stolen_phone",
        "order_physical_card",
        "passcode_forgotten",
        "pending_card_payment",
        "pending_cash_withdrawal",
        "pending_top_up",
        "pending_transfer",
        "pin_blocked",
        "receiving_money",
        "request_refund",
        "reverted_card_payment?",
        "supported_cards_and_currencies",
        "terminate_account",
        "top_up_by_bank_transfer_charge",
        "top_up_by_card_charge",
        "top_up_by_cash_or_cheque",
        "top_up_failed",
        "top_up_limits",
        "top_up_reverted",
        "topping_up_by_card",
        "transaction_charged_twice",
        "transfer_fee_charged",
        "transfer_into_account",
        "transfer_not_received_by_recipient",
        "transfer_timing",
        "unable_to_verify_identity",
        "verify_my_identity",
        "verify_source_of_funds",
        "verify_top_up",
        "virtual_card_not_working",
        "visa_or_mastercard",
        "why_verify_identity",
        "wrong_amount_of_cash_received",
        "wrong_exchange_rate_for_cash_withdrawal",
    }
)
# Risk -> the intents that raise it. The keys are the risks vouched for on every row.
PRESENT: Final[Mapping[Risk, frozenset[str]]] = {
    "fraud": frozenset(
        {
            "compromised_card",
            "card_payment_not_recognised",
            "cash_withdrawal_not_recognised",
            "direct_debit_payment_not_recognised",
        }
    ),
    "legal_regulatory": frozenset(),
    "service_outage": frozenset(
        {"card_not_working", "virtual_card_not_working", "top_up_failed", "failed_transfer"}
    ),
    "product_safety": frozenset(),
    "churn": frozenset({"terminate_account"}),
    "toxicity": frozenset(),
}
# Risk -> intents under which the risk may or may not be present: left unknown.
AMBIGUOUS: Final[Mapping[Risk, frozenset[str]]] = {
    "fraud": frozenset(
        {"lost_or_stolen_card", "lost_or_stolen_phone", "extra_charge_on_statement"}
    ),
    "service_outage": frozenset(
        {
            "contactless_not_working",
            "declined_card_payment",
            "declined_cash_withdrawal",
            "declined_transfer",
            "pending_card_payment",
            "pending_cash_withdrawal",
            "pending_top_up",
            "pending_transfer",
            "balance_not_updated_after_bank_transfer",
            "balance_not_updated_after_cheque_or_cash_deposit",
            "transfer_not_received_by_recipient",
            "top_up_reverted",
            "reverted_card_payment?",
            "beneficiary_not_allowed",
            "card_swallowed",
            "wrong_amount_of_cash_received",
            "transaction_charged_twice",
            "lost_or_stolen_phone",
        }
    ),
}


def risks_for_intent(intent: str) -> dict[Risk, bool]:
    """The risk labels one intent vouches for (unknown risks are left out)."""
    return {
        risk: intent in present
        for risk, present in PRESENT.items()
        if intent not in AMBIGUOUS.get(risk, frozenset())
    }


def load(data_dir: Path) -> Dataset:
    path = require_file(data_dir / CSV_PATH, NAME)
    out = Collector(NAME, source="chats")
    lines = decode_lines(path.read_bytes(), NAME)
    for row in read_csv_records(lines, ("text", "category"), out.report):
        intent = row["category"].strip()
        if intent not in INTENTS:
            out.skip("unknown label")
            continue
        out.add(row["text"], None, risks_for_intent(intent))
    return out.build(LICENCE)
