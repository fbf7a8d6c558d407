from textstats.buggy import average_word_length


def test_average_word_length():
    assert average_word_length("ab abcd") == 3
