"""Every verb's --help is plain text: no reStructuredText, no %-format leftovers, no Python reprs."""

import re

import pytest

from protege.cli.main import VERBS, main
from protege.cli.options import plain

RAW = re.compile(r"``|`|:[a-z]+:|%\(|%%|\bNone\b|<[\w.]+ object at|\w+Config\(|default: \(\)|default: \[\]")


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_has_no_raw_markup(verb, capsys):
    assert main([verb, "--help"]) == 0
    text = capsys.readouterr().out
    found = [line.strip() for line in text.splitlines() if RAW.search(line)]
    assert not found, found


def test_variant_sections_say_their_choice_once(capsys):
    assert main(["prune", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--method imp:\n  Iterative magnitude pruning" in text and "--method imp: iterative" not in text


def test_batch_size_help_says_it_is_the_global_batch(capsys):
    assert main(["distill", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--batch-size N examples per batch over all processes: the global batch" in text
    assert "each of N processes takes 1/N of it" in text


def test_plain_strips_markup():
    assert plain("see :class:`~protege.engine.TrainSettings` and :func:`protege.prune`") == \
        "see TrainSettings and protege.prune"
    assert plain("``--method imp``: a `word`, 5%") == "--method imp: a word, 5%"
