"""US CFPB consumer complaints: the narrative a consumer wrote, with product and issue.

Only rows with a narrative are used (the others are skipped as "no narrative": without
consent the CFPB publishes no text). Source "chats": a customer writing to complain about
a company, the nearest of our sources. Sentiment: negative for every row - each one is a
complaint filed with a regulator; the odd matter-of-fact request ("please remove the fraud
alert") is accepted as label noise. Redactions (XXXX, XX/XX/XXXX) and {$amounts} are kept:
the model will meet them only here, and cannot learn a label from them since every
narrative has them.

Risks come from product / issue / sub-issue (the consumer picks one issue from the CFPB
form). Every risk is decided per row by the same rule, in this order:
1. any of the three fields is in the risk's PRESENT set -> True;
2. any is in its AMBIGUOUS set (the issue covers cases with and without the risk)
   -> unknown;
3. the narrative matches the risk's CUES (words that would mention it: "fraud",
   "can't afford", "lawsuit", "app was down", ...) -> unknown, because narratives are long
   and a consumer often raises a second matter beside the one picked on the form;
4. otherwise False.

- fraud True: issue "Fraud or scam"; sub-issues naming identity theft, fraudulent
  accounts or loans, unauthorised transactions or charges for purchases the consumer did
  not make. Ambiguous: "Information belongs to someone else", unrecognised credit
  inquiries, "Debt is not yours" (often, not always, identity theft), fraud alerts and
  security freezes, identity-theft protection services, misleading advertising, purchase
  disputes, debit-card problems.
- financial_distress True (the consumer's own distress: the signal a support chat can
  give): "Struggling to pay ..." issues, "Problem caused by your funds being low"
  (overdrafts, bounced cheques), debts discharged in bankruptcy, repossession,
  seized property or exempt funds taken by collectors. Ambiguous: the whole "Debt
  collection" and payday-loan products (being in collection often, not always, means
  distress), "Account status incorrect" (late-payment records).
- legal_regulatory True: collectors suing, threatening to sue, arrest or jail, claiming
  non-payment is a crime, seizing property or exempt funds; forced arbitration. Every
  other complaint is decided by step 3: many cite the FCRA or FDCPA.
- churn True: "Can't close your account", fees for closing an account, "Problem
  canceling credit monitoring ...". Ambiguous: accounts the company closed, funds not
  received from a closed account.
- service_outage, product_safety, toxicity: no issue raises them, so they are False
  where the narrative has no cue; the abusive-language sub-issues (about a collector's
  words, which the narrative may quote) are ambiguous for toxicity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector, decode_lines, read_csv_records, require_file
from tonewatch.contracts import Risk

NAME: Final = "cfpb"
LICENCE: Final = "US public data (CFPB consumer complaint database)"
CSV_PATH: Final = "cfpb_complaints/complaints_sample.csv"
PRODUCT, ISSUE, SUB_ISSUE = "Product", "Issue", "Sub-issue"
NARRATIVE: Final = "Consumer complaint narrative"


@dataclass(frozen=True)
class RiskRule:
    """How one risk is read off a complaint; see the module docstring for the order."""

    present: frozenset[str]
    ambiguous: frozenset[str]
    cues: re.Pattern[str]


def _cues(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(words) + r")", re.IGNORECASE)


RULES: Final[Mapping[Risk, RiskRule]] = {
    "fraud": RiskRule(
        present=frozenset(
            {
                "Fraud or scam",
                "Debt was result of identity theft",
                "Debt resulted from identity theft",
                "Card opened as result of identity theft or fraud",
                "Account opened as a result of fraud",
                "Fraudulent loan",
                "Transaction was not authorized",
                "Charged for a purchase or transfer you did not make with the card",
                "Card was charged for something you did not purchase with the card",
            }
        ),
        ambiguous=frozenset(
            {
                "Information belongs to someone else",
                "Credit inquiries on your report that you don't recognize",
                "Debt is not yours",
                "Debt is not mine",
                "Reporting company used your report improperly",
                "Problem with fraud alerts or security freezes",
                "Credit monitoring or identity theft protection services",
                "Identity theft protection or other monitoring services",
                "Unauthorized transactions or other transaction problem",
                "Other transaction problem",
                "Lost or stolen money order",
                "False statements or representation",
                "Advertising and marketing, including promotional offers",
                "Confusing or misleading advertising",
                "Confusing or misleading advertising or marketing",
                "Confusing or misleading advertising about the credit card",
                "Credit card company isn't resolving a dispute about a purchase on your statement",
                "Card company isn't resolving a dispute about a purchase or transfer",
                "Problem using a debit or ATM card",
                "Can't stop withdrawals from your account",
                "Money was taken from your account on the wrong day or for the wrong amount",
            }
        ),
        cues=_cues(
            r"fraud",
            r"scam",
            r"identity theft",
            r"stole",
            r"steal",
            r"unauthori[sz]",
            r"(did ?n[o']t|never) (authori[sz]e|open|appl(y|ied)|ma[dk]e|ha[dv]e?|recogni[sz]e)",
            r"do ?n[o']t recogni[sz]e",
            r"not (my|mine)\b",
            r"(do|does) not belong",
            r"belongs? to (someone|another)",
            r"impersonat",
            r"phishing",
            r"fake",
            r"hack",
        ),
    ),
    "legal_regulatory": RiskRule(
        present=frozenset(
            {
                "Taking/threatening an illegal action",
                "Sued you without properly notifying you of lawsuit",
                "Threatened to sue you for very old debt",
                "Threatened to sue on too old debt",
                "Threatened to arrest you or take you to jail if you do not pay",
                "Indicated you were committing crime by not paying debt",
                "Seized or attempted to seize your property",
                "Collected or attempted to collect exempt funds",
                "Credit card company forcing arbitration",
            }
        ),
        ambiguous=frozenset(),
        cues=_cues(
            r"laws?\b",
            r"lawsuit",
            r"legal",
            r"illegal",
            r"su(e|ed|ing)\b",
            r"court",
            r"attorney",
            r"lawyer",
            r"judge?ment",
            r"violat",
            r"act\b",
            r"FCRA",
            r"FDCPA",
            r"U\.? ?S\.? ?C",
            r"section \d",
            r"regulat",
            r"statut",
            r"arbitrat",
            r"arrest",
            r"jail",
            r"garnish",
            r"subpoena",
            r"complian",
            r"CFPB",
            r"FTC",
            r"rights?\b",
        ),
    ),
    "financial_distress": RiskRule(
        present=frozenset(
            {
                "Struggling to pay mortgage",
                "Struggling to pay your loan",
                "Struggling to repay your loan",
                "Struggling to pay your bill",
                "Problem caused by your funds being low",
                "Debt was already discharged in bankruptcy and is no longer owed",
                "Lender trying to repossess or disable the vehicle",
                "Loan balance remaining after the vehicle is repossessed and sold",
                "Credit card company won't work with you while you're going through "
                "financial hardship",
                "Seized or attempted to seize your property",
                "Collected or attempted to collect exempt funds",
            }
        ),
        ambiguous=frozenset(
            {
                "Debt collection",
                "Payday loan, title loan, or personal loan",
                "Payday loan",
                "Account status incorrect",
            }
        ),
        cues=_cues(
            r"can ?n[o']t afford",
            r"unable to (pay|afford)",
            r"hardship",
            r"struggl",
            r"bankrupt",
            r"foreclos",
            r"repossess",
            r"evict",
            r"overdr[ae]",
            r"unemploy",
            r"lost my job",
            r"laid off",
            r"behind on",
            r"late payment",
            r"past due",
            r"delinquen",
            r"charge[- ]?off",
            r"charged off",
            r"collection",
            r"garnish",
            r"insufficient funds",
            r"default",
            r"debt",
        ),
    ),
    "service_outage": RiskRule(
        present=frozenset(),
        ambiguous=frozenset(),
        cues=_cues(
            r"outage",
            r"crash",
            r"glitch",
            r"offline",
            r"down\b",
            r"not working",
            r"(system|technical|computer) (error|issue|problem|failure|difficult)",
            r"error message",
            r"unavailable",
        ),
    ),
    "product_safety": RiskRule(
        present=frozenset(),
        ambiguous=frozenset(),
        cues=_cues(
            r"injur",
            r"unsafe",
            r"danger",
            r"hazard",
            r"recall",
            r"defect",
            r"fire\b",
            r"burn",
            r"explo",
            r"accident",
            r"airbag",
            r"brake",
            r"safety",
            r"mold",
        ),
    ),
    "churn": RiskRule(
        present=frozenset(
            {
                "Can't close your account",
                "Fees charged for closing account",
                "Problem canceling credit monitoring or identify theft protection service",
            }
        ),
        ambiguous=frozenset(
            {"Company closed your account", "Funds not received from closed account"}
        ),
        cues=_cues(
            r"clos(e|ed|ing) (out )?(my|the|our|this|that|all)\b",
            r"(account|card)s? (to be |was |were |be |been )?closed",
            r"cancel",
            r"terminat",
            r"switch",
            r"take my business",
            r"(another|different|new) (bank|company|lender|provider|servicer|card)",
            r"never (use|bank|do business)",
            r"leav(e|ing)",
        ),
    ),
    "toxicity": RiskRule(
        present=frozenset(),
        ambiguous=frozenset(
            {
                "Used obscene, profane, or other abusive language",
                "Used obscene/profane/abusive language",
            }
        ),
        cues=_cues(
            r"fuck",
            r"shit",
            r"bitch",
            r"damn",
            r"asshole",
            r"bastard",
            r"idiot",
            r"stupid",
            r"moron",
            r"crap",
            r"profan",
            r"obscen",
            r"curs(e|ing)",
        ),
    ),
}


def risks_for_complaint(
    product: str, issue: str, sub_issue: str, narrative: str
) -> dict[Risk, bool]:
    """The risk labels one complaint vouches for (unknown risks are left out)."""
    categories = {product.strip(), issue.strip(), sub_issue.strip()}
    risks: dict[Risk, bool] = {}
    for risk, rule in RULES.items():
        if categories & rule.present:
            risks[risk] = True
        elif not categories & rule.ambiguous and not rule.cues.search(narrative):
            risks[risk] = False
    return risks


def load(data_dir: Path) -> Dataset:
    path = require_file(data_dir / CSV_PATH, NAME)
    out = Collector(NAME, source="chats")
    lines = decode_lines(path.read_bytes(), NAME)
    for row in read_csv_records(lines, (PRODUCT, ISSUE, SUB_ISSUE, NARRATIVE), out.report):
        narrative = row[NARRATIVE]
        if not narrative.strip():
            out.skip("no narrative")
            continue
        risks = risks_for_complaint(row[PRODUCT], row[ISSUE], row[SUB_ISSUE], narrative)
        out.add(narrative, "negative", risks)
    return out.build(LICENCE)
