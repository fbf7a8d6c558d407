from textstats.report import summarize


def test_summarize_reports_every_statistic():
    assert summarize("hello world\nhi\n") == {
        "words": 3,
        "lines": 2,
        "chars": 15,
        "most_common_char": "l",
    }
