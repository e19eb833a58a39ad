"""`errors.one_line`: the one way an exception becomes part of a one-line message."""

from reasonrl.errors import one_line


def test_one_line_collapses_cuts_and_names_the_type():
    e = ValueError("bad header\n  in row 3\t(col 'a')")
    assert one_line(e) == "bad header in row 3 (col 'a')"  # newlines and runs of whitespace collapse
    assert one_line(e, typed=True) == "ValueError: bad header in row 3 (col 'a')"
    assert one_line(KeyError()) == "KeyError"  # no text: the type's name, not an empty message
    assert one_line(RuntimeError("x" * 400)) == "x" * 297 + "..."  # 300 characters at most
    assert one_line("a\nb", 40) == "a b"  # text too (a repr in a message)
