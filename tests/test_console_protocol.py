"""The node's request line parser (firmware/loaxa_node/console.py) on CPython."""

import pytest

from loaxa_node.console import CmdError, parse, request_id


@pytest.mark.parametrize("line, rid", [(b"@1 status", "1"), (b"@aZ9 x {}", "aZ9"),
                                       (b"@abcdefgh", "abcdefgh")])
def test_request_id_is_read_first(line, rid):
    assert request_id(line) == rid


@pytest.mark.parametrize("line", [b"status", b"@ status", b"@abcdefghi status", b"@a-b status",
                                  b"@\xc3\xa9 status", b"@[ status"])
def test_bad_request_ids_teach_the_syntax(line):
    with pytest.raises(CmdError) as e:
        request_id(line)
    assert e.value.code == "syntax" and e.value.rid is None


def test_errors_after_the_id_carry_it():
    assert parse(b"@7 config.get {\"keys\": []}", "7") == ("config.get", {"keys": []})
    for line, code in ((b"@7", "syntax"), (b"@7 status [1]", "bad_json"),
                       (b"@7 status {x", "bad_json"), (b"@7 st\xff", "syntax")):
        with pytest.raises(CmdError) as e:
            parse(line, "7")
        assert (e.value.code, e.value.rid) == (code, "7")
