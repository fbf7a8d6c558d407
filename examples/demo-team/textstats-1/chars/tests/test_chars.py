from textstats.chars import count_chars, most_common_char


def test_count_chars_includes_whitespace():
    assert count_chars("a b\n") == 4


def test_most_common_char_ignores_whitespace():
    assert most_common_char("a  b b") == "b"


def test_a_tie_goes_to_the_first_character_seen():
    assert most_common_char("xyyx") == "x"


def test_blank_text_has_no_most_common_char():
    assert most_common_char(" \n") is None
