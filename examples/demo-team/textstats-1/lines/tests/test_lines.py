from textstats.lines import count_lines


def test_an_empty_text_has_no_lines():
    assert count_lines("") == 0


def test_a_last_line_without_newline_counts():
    assert count_lines("a\nb") == 2
    assert count_lines("a\nb\n") == 2
