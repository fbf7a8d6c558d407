from textstats.words import count_words


def test_an_empty_text_has_no_words():
    assert count_words("") == 0


def test_words_are_separated_by_any_whitespace():
    assert count_words("one two\tthree\nfour  five") == 5
