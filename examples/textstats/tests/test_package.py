import textstats


def test_the_package_has_a_version():
    assert textstats.__version__
