"""Dataset loaders: label mappings, quirk handling and skip accounting.

Every fixture is a tiny synthetic file written to tmp_path that reproduces the layout and
the quirks of the real file; the real data (../shared/data) is never copied here. The
tests at the end load the real files when that folder exists, and skip otherwise.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import pytest

from retrain import datasets
from retrain.datasets import (
    airline,
    banking77,
    blitzer,
    cfpb,
    davidson,
    financial_phrasebank,
    reading,
    seed,
    twitter_financial_news,
    uci_sentences,
)
from retrain.datasets.base import Dataset, LoadReport
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, SOURCES, Risk

pytestmark = pytest.mark.unit

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def labels(ds: Dataset) -> list[tuple[str, str | None, dict[Risk, bool]]]:
    return [(e.text, e.sentiment, dict(e.risks)) for e in ds.examples]


def assert_consistent(ds: Dataset) -> None:
    """What every loaded dataset must satisfy, whatever its source."""
    assert ds.report.dataset == ds.name
    assert ds.report.loaded == len(ds.examples)
    assert all(e.dataset == ds.name for e in ds.examples)
    assert all(e.text and e.text == " ".join(e.text.split()) for e in ds.examples)
    assert len({e.text for e in ds.examples}) == len(ds.examples)
    assert all(e.sentiment is None or e.sentiment in SENTIMENT_LABELS for e in ds.examples)
    assert all(set(e.risks) <= set(RISK_LABELS) for e in ds.examples)
    assert all(e.source in SOURCES for e in ds.examples)


# --- shared mechanics ---------------------------------------------------------------


def test_decode_lines_falls_back_per_line_and_splits_only_on_cr_lf() -> None:
    data = "\ufeffné\r\n".encode() + b"caf\xe9\n" + "a\u0085b\u2028c\n".encode()
    assert reading.decode_lines(data, "t") == ["né\r\n", "café\n", "a\u0085b\u2028c\n"]


def test_clean_text_repairs_c1_punctuation_and_collapses_whitespace() -> None:
    assert reading.clean_text("  is\u0085was \u0096 so\u0097so\t\n ok\u200b ") == (
        "is\u2026was \u2013 so\u2014so ok"
    )


def test_csv_records_count_malformed_and_blank_rows() -> None:
    report = LoadReport(dataset="t")
    lines = ["a,b\n", "1,2\n", "\n", "1,2,3\n", '"x\ny",4\n']
    rows = list(reading.read_csv_records(lines, ("a", "b"), report))
    assert rows == [{"a": "1", "b": "2"}, {"a": "x\ny", "b": "4"}]
    assert report.skipped == Counter({"blank line": 1, "malformed row": 1})


def test_csv_records_reject_a_file_without_the_columns() -> None:
    with pytest.raises(ValueError, match="lacks"):
        list(reading.read_csv_records(["x,y\n", "1,2\n"], ("a",), LoadReport(dataset="t")))


def test_collector_drops_empty_and_repeated_texts_first_one_wins() -> None:
    out = reading.Collector("t", source="chats")
    assert out.add(" hello  world ", "positive")
    assert not out.add("hello world", "positive")
    assert not out.add("hello\tworld", "negative")
    assert not out.add(" \u0007 ", "neutral")
    ds = out.build("MIT")
    assert labels(ds) == [("hello world", "positive", {})]
    assert ds.report.skipped == Counter(
        {"duplicate": 1, "duplicate with conflicting labels": 1, "empty text": 1}
    )


# --- Financial PhraseBank -----------------------------------------------------------


def phrasebank_zip(root: Path, lines: list[bytes]) -> Path:
    path = root / financial_phrasebank.ZIP_PATH
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("FinancialPhraseBank-v1.0/", b"")
        archive.writestr("__MACOSX/FinancialPhraseBank-v1.0/._Sentences_50Agree.txt", b"\0\1")
        archive.writestr("FinancialPhraseBank-v1.0/Sentences_50Agree.txt", b"\r\n".join(lines))
        archive.writestr("FinancialPhraseBank-v1.0/Sentences_AllAgree.txt", b"Up .@positive")
    return path


def test_phrasebank_reads_latin1_lines_splits_on_last_at_and_skips_bad_lines(
    tmp_path: Path,
) -> None:
    phrasebank_zip(
        tmp_path,
        [
            b"Sepp\xe4l\xe4 's sales rose .@positive",
            b"Profit fell to EUR 1 mn @ the plant .@negative",
            b"Shares  were   flat .@neutral",
            b"",
            b"No label on this line",
            b"Shares were mixed .@mixed",
            b"   @neutral",
            b"Sepp\xe4l\xe4 's sales rose .@positive",
            b"Shares were flat .@ Positive ",
        ],
    )
    ds = financial_phrasebank.load(tmp_path)
    assert labels(ds) == [
        ("Seppälä 's sales rose .", "positive", {}),
        ("Profit fell to EUR 1 mn @ the plant .", "negative", {}),
        ("Shares were flat .", "neutral", {}),
    ]
    assert ds.report.skipped == Counter(
        {
            "blank line": 1,
            "malformed line": 1,
            "unknown label": 1,
            "empty text": 1,
            "duplicate": 1,
            "duplicate with conflicting labels": 1,
        }
    )
    assert (ds.name, ds.licence) == ("financial_phrasebank", "CC BY-NC-SA 3.0 (non-commercial)")
    assert {e.source for e in ds.examples} == {"news"}
    assert_consistent(ds)


def test_phrasebank_agreement_level_picks_its_file_and_name(tmp_path: Path) -> None:
    phrasebank_zip(tmp_path, [b"Down .@negative"])
    ds = financial_phrasebank.load(tmp_path, agreement="All")
    assert ds.name == "financial_phrasebank_allagree"
    assert labels(ds) == [("Up .", "positive", {})]
    with pytest.raises(FileNotFoundError, match=r"Sentences_66Agree\.txt"):
        financial_phrasebank.load(tmp_path, agreement="66")


# --- Twitter Financial News ---------------------------------------------------------


def test_twitter_financial_news_maps_bearish_bullish_and_skips_bad_rows(tmp_path: Path) -> None:
    write(
        tmp_path / twitter_financial_news.CSV_PATH,
        "text,label\r\n"
        "$ABC - Abc cut to sell https://t.co/x,0\r\n"
        '"$DEF: beats, raises\r\nguidance",1\r\n'
        "$GHI sets date for Q3 results &amp; call,2\r\n"
        "$JKL what,3\r\n"
        "$MNO,too,many,fields\r\n"
        "\r\n"
        ",2\r\n"
        "$ABC - Abc cut to sell https://t.co/x,0\r\n",
    )
    ds = twitter_financial_news.load(tmp_path)
    assert labels(ds) == [
        ("$ABC - Abc cut to sell https://t.co/x", "negative", {}),
        ("$DEF: beats, raises guidance", "positive", {}),
        ("$GHI sets date for Q3 results & call", "neutral", {}),
    ]
    assert ds.report.skipped == Counter(
        {
            "unknown label": 1,
            "malformed row": 1,
            "blank line": 1,
            "empty text": 1,
            "duplicate": 1,
        }
    )
    assert_consistent(ds)


# --- UCI sentences ------------------------------------------------------------------


def test_uci_skips_the_added_header_and_repairs_c1_punctuation(tmp_path: Path) -> None:
    write(
        tmp_path / uci_sentences.FILES["uci_imdb"],
        b"sentence\tscore\n"
        + "The script is\u0085was there a script?  \t0\n".encode()
        + b"Caf\xe9 scene was lovely.\t1\n"
        + b"no tab on this line\n"
        + b"Odd label here.\t2\n"
        + b"\n"
        + b"   \t1\n"
        + b"Caf\xe9 scene was lovely.  \t1\n",
    )
    ds = uci_sentences.load_imdb(tmp_path)
    assert labels(ds) == [
        ("The script is…was there a script?", "negative", {}),
        ("Café scene was lovely.", "positive", {}),
    ]
    assert ds.report.skipped == Counter(
        {
            "header line": 1,
            "malformed line": 1,
            "unknown label": 1,
            "blank line": 1,
            "empty text": 1,
            "duplicate": 1,
        }
    )
    assert (ds.name, ds.licence) == ("uci_imdb", "CC BY 4.0")
    assert {e.source for e in ds.examples} == {"reviews"}
    assert_consistent(ds)


@pytest.mark.parametrize("name", sorted(uci_sentences.FILES))
def test_uci_each_site_is_its_own_dataset(tmp_path: Path, name: str) -> None:
    write(tmp_path / uci_sentences.FILES[name], "sentence\tscore\nGood.\t1\n")
    ds = datasets.load(name, tmp_path)
    assert (ds.name, labels(ds)) == (name, [("Good.", "positive", {})])


# --- Blitzer multi-domain -----------------------------------------------------------

BLITZER_POSITIVE = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<reviews>
<review>
<unique_id>
1:great
</unique_id>
<rating>
5.0
</rating>
<title>
Great read!
</title>
<review_text>
Fun &amp; fast. Tom & Jerry <3 would approve.
</review_text>
</review>
<review>
<rating>
4.0
</rating>
<review_text>
Solid second half.
</review_text>
</review>
<review>
<rating>
2.0
</rating>
<title>
Misfiled
</title>
<review_text>
Not good.
</review_text>
</review>
<review>
<rating>
3.0
</rating>
<review_text>
It was fine.
</review_text>
</review>
<review>
<rating>
five
</rating>
<review_text>
Rating is not a number.
</review_text>
</review>
<review>
<rating>
5.0
</rating>
<review_text>
Cut off before the end
</reviews>
"""

BLITZER_NEGATIVE = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<reviews>
<review>
<rating>
1.0
</rating>
<title>
Dull
</title>
<review_text>
Slow
and flat.
</review_text>
</review>
<review>
<rating>
1.0
</rating>
<title>
Dull
</title>
<review_text>
Slow and flat.
</review_text>
</review>
<review>
<rating>
7.0
</rating>
<review_text>
Out of range.
</review_text>
</review>
</reviews>
"""


def test_blitzer_reads_pseudo_xml_and_checks_rating_against_file(tmp_path: Path) -> None:
    folder = tmp_path / blitzer.FOLDER / "books"
    write(folder / "positive.review", BLITZER_POSITIVE)
    write(folder / "negative.review", BLITZER_NEGATIVE)
    ds = blitzer.load_books(tmp_path)
    assert labels(ds) == [
        ("Great read! Fun & fast. Tom & Jerry <3 would approve.", "positive", {}),
        ("Solid second half.", "positive", {}),
        ("Dull. Slow and flat.", "negative", {}),
    ]
    assert ds.report.skipped == Counter(
        {
            "rating contradicts file": 1,
            "neutral rating": 1,
            "malformed review": 2,
            "duplicate": 1,
            "unknown label": 1,
        }
    )
    assert (ds.name, ds.licence) == ("blitzer_books", "academic use, no licence stated")
    assert_consistent(ds)


def test_blitzer_rating_mapping() -> None:
    assert blitzer.RATINGS == {1: "negative", 2: "negative", 4: "positive", 5: "positive"}
    assert blitzer.review_text("Waste of money", "Broke.") == "Waste of money. Broke."
    assert blitzer.review_text("Wow?", "Yes.") == "Wow? Yes."
    assert blitzer.review_text(None, "Only body.") == "Only body."


# --- Airline ------------------------------------------------------------------------

AIRLINE_HEADER = "tweet_id,airline_sentiment,negativereason,airline,text,tweet_created\r\n"


def test_airline_repairs_text_and_vouches_only_for_service_outage(tmp_path: Path) -> None:
    rows = [
        "1,negative,Cancelled Flight,United,@united my flight was Cancelled Flightled again,x",
        "2,negative,Late Flight,United,@united 3 hours Late Flight &amp; no info,x",
        "3,negative,Customer Service Issue,Delta,@delta on hold for an hour,x",
        "4,negative,Customer Service Issue,Delta,@delta website is down and nobody answers,x",
        "5,negative,Can't Tell,Delta,@delta ugh,x",
        "6,positive,,Delta,@delta thanks for the upgrade,x",
        "7,neutral,,Delta,@delta is my flight delayed?,x",
        "8,neutral,,Delta,@delta I need to reFlight Booking Problems,x",
        "9,mixed,,Delta,@delta hmm,x",
        "10,negative,Damaged Luggage,Delta,@delta my bag arrived torn,x",
        "11,negative,Lost Luggage,Delta,@delta where is my bag,x",
        "12,negative,Lost Luggage,Delta,@delta   where is my bag,x",
        "13,negative,Bad Flight,Delta",
    ]
    write(tmp_path / airline.CSV_PATH, AIRLINE_HEADER + "\r\n".join(rows) + "\r\n")
    ds = airline.load(tmp_path)
    assert labels(ds) == [
        ("@united my flight was cancelled again", "negative", {"service_outage": True}),
        ("@united 3 hours late & no info", "negative", {"service_outage": True}),
        ("@delta on hold for an hour", "negative", {"service_outage": False}),
        ("@delta website is down and nobody answers", "negative", {}),
        ("@delta ugh", "negative", {}),
        ("@delta thanks for the upgrade", "positive", {"service_outage": False}),
        ("@delta is my flight delayed?", "neutral", {}),
        ("@delta I need to rebooking", "neutral", {"service_outage": False}),
        ("@delta my bag arrived torn", "negative", {"service_outage": False}),
        ("@delta where is my bag", "negative", {"service_outage": False}),
    ]
    assert ds.report.skipped == Counter({"unknown label": 1, "duplicate": 1, "malformed row": 1})
    assert (ds.name, ds.licence) == ("airline", "CC BY-NC-SA 4.0 (non-commercial)")
    assert {e.source for e in ds.examples} == {"chats"}
    assert_consistent(ds)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("Cancelled Flight", True),
        ("Late Flight", True),
        ("Customer Service Issue", False),
        ("Lost Luggage", False),
        ("Damaged Luggage", False),
        ("Bad Flight", False),
        ("Flight Booking Problems", False),
        ("Flight Attendant Complaints", False),
        ("longlines", False),
        ("Can't Tell", None),
        ("", None),
        ("Some New Reason", None),
    ],
)
def test_airline_negative_reason_mapping(reason: str, expected: bool | None) -> None:
    assert airline.service_outage("negative", reason, "@x this is bad") is expected


@pytest.mark.parametrize(
    "text",
    ["flight delayed again", "they cancelled it", "app is down", "stranded in Denver"],
)
def test_airline_outage_cue_keeps_other_reasons_unknown(text: str) -> None:
    assert airline.service_outage("negative", "Customer Service Issue", text) is None
    assert airline.service_outage("positive", "", text) is None


def test_airline_text_repair_reverts_every_label_expansion() -> None:
    assert airline.repair_text(
        "Cancelled Flightled, chocoLate Flight, reFlight Booking Problems"
    ) == ("cancelled, chocolate, rebooking")


# --- BANKING77 ----------------------------------------------------------------------


def test_banking77_maps_intents_to_risks_and_leaves_sentiment_unknown(tmp_path: Path) -> None:
    write(
        tmp_path / banking77.CSV_PATH,
        "text,category\r\n"
        "Someone used my card without my knowledge!,compromised_card\r\n"
        "Please close my account,terminate_account\r\n"
        "My card stopped working,card_not_working\r\n"
        "My card was stolen,lost_or_stolen_card\r\n"
        "Why was my transfer declined?,declined_transfer\r\n"
        "When will my card arrive?,card_arrival\r\n"
        "Can you make me a coffee?,make_coffee\r\n"
        "When will my card  arrive?,card_arrival\r\n",
    )
    ds = banking77.load(tmp_path)
    none: dict[Risk, bool] = {r: False for r in RISK_LABELS if r != "financial_distress"}
    assert labels(ds) == [
        ("Someone used my card without my knowledge!", None, none | {"fraud": True}),
        ("Please close my account", None, none | {"churn": True}),
        ("My card stopped working", None, none | {"service_outage": True}),
        ("My card was stolen", None, {r: v for r, v in none.items() if r != "fraud"}),
        (
            "Why was my transfer declined?",
            None,
            {r: v for r, v in none.items() if r != "service_outage"},
        ),
        ("When will my card arrive?", None, none),
    ]
    assert ds.report.skipped == Counter({"unknown label": 1, "duplicate": 1})
    assert (ds.name, ds.licence) == ("banking77", "CC BY 4.0")
    assert_consistent(ds)


@pytest.mark.parametrize(
    ("intent", "risk"),
    [(intent, risk) for risk, intents in banking77.PRESENT.items() for intent in intents],
)
def test_banking77_each_mapped_intent_raises_its_risk(intent: str, risk: Risk) -> None:
    risks = banking77.risks_for_intent(intent)
    assert risks[risk] is True
    assert [r for r, present in risks.items() if present] == [risk]


@pytest.mark.parametrize(
    ("intent", "risk"),
    [(intent, risk) for risk, intents in banking77.AMBIGUOUS.items() for intent in intents],
)
def test_banking77_ambiguous_intents_leave_their_risk_unknown(intent: str, risk: Risk) -> None:
    assert risk not in banking77.risks_for_intent(intent)


def test_banking77_documented_mapping() -> None:
    assert banking77.PRESENT["fraud"] == {
        "compromised_card",
        "card_payment_not_recognised",
        "cash_withdrawal_not_recognised",
        "direct_debit_payment_not_recognised",
    }
    assert banking77.PRESENT["churn"] == {"terminate_account"}
    assert banking77.PRESENT["service_outage"] == {
        "card_not_working",
        "virtual_card_not_working",
        "top_up_failed",
        "failed_transfer",
    }
    assert "financial_distress" not in banking77.PRESENT
    assert len(banking77.INTENTS) == 77
    mapped = set().union(*banking77.PRESENT.values(), *banking77.AMBIGUOUS.values())
    assert mapped <= banking77.INTENTS
    assert banking77.risks_for_intent("verify_source_of_funds")["legal_regulatory"] is False


# --- CFPB ---------------------------------------------------------------------------

CFPB_HEADER = (
    "Date received,Product,Sub-product,Issue,Sub-issue,Consumer complaint narrative,Company\r\n"
)


def test_cfpb_keeps_narratives_only_and_maps_issues(tmp_path: Path) -> None:
    rows = [
        "2019/1/1,Credit reporting,Credit reporting,Incorrect information on your report,"
        "Account information incorrect,,ACME",
        '2019/1/2,Money transfer,Domestic,Fraud or scam,,"I sent XXXX dollars on XX/XX/2019\r\n'
        'and the seller vanished.",ACME',
        "2019/1/3,Mortgage,FHA mortgage,Struggling to pay mortgage,,I asked for a new plan.,ACME",
        "2019/1/4,Checking or savings account,Checking account,Managing an account,"
        "Banking errors,My deposit was posted twice.,ACME",
        "2019/1/5,Checking or savings account,Checking account,Managing an account,"
        "Banking errors,My deposit was posted twice.,ACME",
        "2019/1/6,Mortgage,FHA mortgage,Closing on a mortgage",
    ]
    write(tmp_path / cfpb.CSV_PATH, CFPB_HEADER + "\r\n".join(rows) + "\r\n")
    ds = cfpb.load(tmp_path)
    none: dict[Risk, bool] = dict.fromkeys(RISK_LABELS, False)
    assert labels(ds) == [
        (
            "I sent XXXX dollars on XX/XX/2019 and the seller vanished.",
            "negative",
            none | {"fraud": True},
        ),
        ("I asked for a new plan.", "negative", none | {"financial_distress": True}),
        ("My deposit was posted twice.", "negative", none),
    ]
    assert ds.report.skipped == Counter({"no narrative": 1, "duplicate": 1, "malformed row": 1})
    assert (ds.name, ds.licence) == ("cfpb", "US public data (CFPB consumer complaint database)")
    assert {e.source for e in ds.examples} == {"chats"}
    assert_consistent(ds)


@pytest.mark.parametrize(
    ("risk", "category"),
    [(risk, c) for risk, rule in cfpb.RULES.items() for c in sorted(rule.present)],
)
def test_cfpb_each_present_category_raises_its_risk(risk: Risk, category: str) -> None:
    assert cfpb.risks_for_complaint("", category, "", "It happened.")[risk] is True
    assert cfpb.risks_for_complaint("", "", category, "It happened.")[risk] is True


@pytest.mark.parametrize(
    ("risk", "category"),
    [(risk, c) for risk, rule in cfpb.RULES.items() for c in sorted(rule.ambiguous)],
)
def test_cfpb_ambiguous_categories_leave_their_risk_unknown(risk: Risk, category: str) -> None:
    assert risk not in cfpb.risks_for_complaint(category, "", "", "It happened.")
    assert risk not in cfpb.risks_for_complaint("", "", category, "It happened.")


@pytest.mark.parametrize(
    ("risk", "narrative"),
    [
        ("fraud", "This account is not mine and I never opened it."),
        ("fraud", "Someone committed identity theft."),
        ("legal_regulatory", "This violates the FCRA, I will contact a lawyer."),
        ("financial_distress", "I lost my job and can't afford the payments."),
        ("service_outage", "The website was down for a week."),
        ("product_safety", "The car they financed had a brake defect."),
        ("churn", "I want to close my account and switch to another bank."),
        ("toxicity", "The agent called me an idiot."),
    ],
)
def test_cfpb_cue_in_narrative_makes_absence_unknown(risk: Risk, narrative: str) -> None:
    issue = ("Managing an account", "Banking errors")
    assert cfpb.risks_for_complaint("Checking", *issue, "It happened.")[risk] is False
    assert risk not in cfpb.risks_for_complaint("Checking", *issue, narrative)


def test_cfpb_documented_mapping() -> None:
    fraud, legal = cfpb.RULES["fraud"], cfpb.RULES["legal_regulatory"]
    assert {"Fraud or scam", "Debt was result of identity theft"} <= fraud.present
    assert "Information belongs to someone else" in fraud.ambiguous
    assert "Struggling to pay mortgage" in cfpb.RULES["financial_distress"].present
    assert "Debt collection" in cfpb.RULES["financial_distress"].ambiguous
    assert "Threatened to sue you for very old debt" in legal.present
    assert "Can't close your account" in cfpb.RULES["churn"].present
    assert set(cfpb.RULES) == set(RISK_LABELS)


# --- Davidson -----------------------------------------------------------------------


def test_davidson_maps_hate_and_offensive_to_toxicity(tmp_path: Path) -> None:
    write(
        tmp_path / davidson.CSV_PATH,
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,2,1,0,0,RT @a: you are vermin &#128514;\n"
        "1,3,0,3,0,1,shut up you clown &amp; go away\n"
        '2,3,0,0,3,2,"nice day at the\nbeach"\n'
        "3,3,0,0,3,7,unknown class\n"
        "4,3,0,0,3,2,nice day at the beach\n",
    )
    ds = davidson.load(tmp_path)
    assert labels(ds) == [
        ("RT @a: you are vermin \U0001f602", None, {"toxicity": True}),
        ("shut up you clown & go away", None, {"toxicity": True}),
        ("nice day at the beach", None, {"toxicity": False}),
    ]
    assert ds.report.skipped == Counter({"unknown label": 1, "duplicate": 1})
    assert (ds.name, ds.licence) == ("davidson", "MIT")
    assert_consistent(ds)


# --- seed set -----------------------------------------------------------------------


def test_seed_covers_every_label_and_source_without_duplicates() -> None:
    ds = seed.load()
    assert_consistent(ds)
    assert ds.report.skipped_total == 0
    assert 300 <= ds.report.loaded <= 400
    sentiments = Counter(e.sentiment for e in ds.examples)
    assert all(sentiments[s] >= 60 for s in SENTIMENT_LABELS), sentiments
    risks = Counter(r for e in ds.examples for r, present in e.risks.items() if present)
    assert all(risks[r] >= 25 for r in RISK_LABELS), risks
    assert {e.source for e in ds.examples} == set(SOURCES)
    assert all(set(e.risks) == set(RISK_LABELS) for e in ds.examples)
    assert sum(1 for e in ds.examples if not any(e.risks.values())) >= 100


def test_seed_is_deterministic() -> None:
    assert seed.load().examples == seed.load().examples


@pytest.mark.parametrize(
    "row",
    ["bad | - | text", "neg | fraudd | text", "neg | - |  ", "neg | fraud"],
)
def test_seed_rejects_malformed_rows(row: str) -> None:
    with pytest.raises(ValueError, match="seed row"):
        seed.parse_row(row)


# --- registry -----------------------------------------------------------------------


def test_registry_lists_every_loader_with_its_files() -> None:
    assert set(datasets.LOADERS) == set(datasets.FILES)
    assert str(datasets.DEFAULT_DATA_DIR) == "../shared/data"
    assert datasets.FILES["seed"] == ()


def test_registry_without_data_offers_only_the_seed_set(tmp_path: Path) -> None:
    assert datasets.available(tmp_path) == ["seed"]
    assert [d.name for d in datasets.load_all(tmp_path)] == ["seed"]
    with pytest.raises(KeyError, match="unknown dataset"):
        datasets.load("nope", tmp_path)


@pytest.mark.parametrize("name", sorted(set(datasets.LOADERS) - {"seed"}))
def test_every_loader_raises_a_clear_error_when_files_are_missing(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{name}: missing .*shared/data"):
        datasets.load(name, tmp_path)


def test_available_lists_a_dataset_once_its_files_exist(tmp_path: Path) -> None:
    write(tmp_path / banking77.CSV_PATH, "text,category\r\nHi,card_arrival\r\n")
    assert datasets.available(tmp_path) == ["banking77", "seed"]
    assert [d.name for d in datasets.load_all(tmp_path, ["seed", "banking77"])] == [
        "seed",
        "banking77",
    ]


def test_non_commercial_licences_are_marked() -> None:
    assert "(non-commercial)" in financial_phrasebank.LICENCE
    assert "(non-commercial)" in airline.LICENCE
    for licence in (banking77.LICENCE, davidson.LICENCE, uci_sentences.LICENCE, seed.LICENCE):
        assert "non-commercial" not in licence


# --- the real files, when ../shared/data is there -----------------------------------

# Rows per dataset in the data README; at least 90 % must load (repeats are dropped).
README_ROWS = {
    "financial_phrasebank": 4846,
    "twitter_financial_news": 9543,
    "uci_amazon": 1000,
    "uci_yelp": 1000,
    "uci_imdb": 1000,
    "blitzer_books": 2000,
    "blitzer_dvd": 2000,
    "airline": 14640,
    "banking77": 10003,
    "cfpb": 1500,  # "about 1,500 rows carry a narrative"
    "davidson": 24783,
}


@pytest.mark.parametrize("name", sorted(README_ROWS))
def test_real_dataset_loads_plausibly(name: str) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} absent")
    if name not in datasets.available(SHARED_DATA):
        pytest.skip(f"{name} files absent from {SHARED_DATA}")
    ds = datasets.load(name, SHARED_DATA)
    assert_consistent(ds)
    assert ds.report.loaded >= 0.9 * README_ROWS[name], ds.report
    assert ds.report.loaded <= README_ROWS[name] * 1.02, ds.report
    assert ds.report.skipped_total <= 0.05 * ds.report.loaded or name == "cfpb", ds.report
