import json
from pathlib import Path

import pytest

import llm_routing.tokens as tokens_pkg
from llm_routing.tokens import estimate_text_tokens, get_calibration, get_encoding

CORPUS = Path(__file__).parent.parent / "data" / "corpus"
CALIBRATION = json.loads(
    (Path(tokens_pkg.__file__).parent / "data" / "calibration.json").read_text("utf-8")
)
FAMILIES = sorted(CALIBRATION["families"])
FILES = sorted(CORPUS.iterdir())


def features(text):
    size = len(text.encode())
    return {
        "n": len(get_encoding("o200k_base").encode_ordinary(text)),
        "wide": (size - len(text)) / 2,
        "digits": sum(c in "0123456789" for c in text),
        "bytes": size,
        "chars": len(text),
    }


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_estimate_stays_within_its_documented_bounds(family, path):
    text = path.read_text("utf-8")
    f = features(text)
    row = CALIBRATION["families"][family]
    est = estimate_text_tokens(text, family)
    assert est >= f["n"] * row["text_factor"] >= f["n"]
    upper = (
        row["text_factor"] * f["n"]
        + row["wide_factor"] * f["bytes"] / 2
        + row["digit_factor"] * f["chars"]
        + 1
    )
    assert est <= upper


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_is_unchanged_since_calibration(path):
    measured = CALIBRATION["measured"][path.name]
    f = features(path.read_text("utf-8"))
    assert (measured["o200k"], measured["bytes"], measured["chars"], measured["digits"]) == (
        f["n"],
        f["bytes"],
        f["chars"],
        f["digits"],
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_mistral_estimate_is_above_both_measured_mistral_tokenizers(path):
    measured = CALIBRATION["measured"][path.name]
    text = path.read_text("utf-8")
    assert estimate_text_tokens(text, "mistral") >= 1.01 * max(
        measured["tekken"], measured["mistral_spm_v7"]
    )
    assert estimate_text_tokens(text, "mistral-tekken") >= 1.01 * measured["tekken"]


@pytest.mark.parametrize("name", ["chinese.txt", "japanese_korean.txt"])
def test_anthropic_estimate_covers_cl100k_on_cjk_with_margin(name):
    text = (CORPUS / name).read_text("utf-8")
    assert estimate_text_tokens(text, "anthropic") >= 1.6 * features(text)["n"]
    assert estimate_text_tokens(text, "anthropic") > CALIBRATION["measured"][name]["cl100k"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_documents_its_basis(family):
    basis = get_calibration(family).basis
    assert "MEASURED" in basis or "ASSUMED" in basis


def test_estimate_of_empty_text_is_zero():
    assert estimate_text_tokens("", "anthropic") == 0


def test_estimate_rejects_non_text():
    with pytest.raises(TypeError, match="takes a str"):
        estimate_text_tokens(None, "anthropic")
