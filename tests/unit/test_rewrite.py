"""The URL rewrite: plain and JSON-escaped text, PHP-serialized values, edge cases of what is a URL."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.php_values import IS_SERIALIZED, Nested, PhpObject, PhpUnserialize, dumps
from wpclone_engine import rewrite as rewrite_module
from wpclone_engine.rewrite import MAX_DEPTH, Outcome, UrlRewrite, looks_serialized

OLD = "http://a.test"
NEW = "https://clone.example/sub"
REWRITE = UrlRewrite(OLD, NEW)

# (text, what it becomes) when a.test moves to https://clone.example/sub; fragments joined by a space
# are independent, so any sequence of them must rewrite to the sequence of their rewrites.
FRAGMENTS = [
    ("http://a.test", "https://clone.example/sub"),
    ("https://a.test/", "https://clone.example/sub/"),
    ("HTTP://a.test/x", "https://clone.example/sub/x"),
    ("http://a.test/page?x=1#top", "https://clone.example/sub/page?x=1#top"),
    ('href="http://a.test/contact/"', 'href="https://clone.example/sub/contact/"'),
    ("src='//a.test/img.png'", "src='//clone.example/sub/img.png'"),
    ("http:\\/\\/a.test\\/wp-content\\/x.jpg", "https:\\/\\/clone.example\\/sub\\/wp-content\\/x.jpg"),
    ('{"url":"https:\\/\\/a.test"}', '{"url":"https:\\/\\/clone.example\\/sub"}'),
    ("(see http://a.test).", "(see https://clone.example/sub)."),
    ("http://a.test.", "https://clone.example/sub."),
    ("http://a.test.uk/x", "http://a.test.uk/x"),
    ("http://a.test:8080/x", "http://a.test:8080/x"),
    ("http://a.testing/", "http://a.testing/"),
    ("http://a.test-staging.example", "http://a.test-staging.example"),
    ("http://www.a.test/", "http://www.a.test/"),
    ("http://sub.a.test/", "http://sub.a.test/"),
    ("ftp://a.test/file", "ftp://a.test/file"),
    ("a.test", "a.test"),
    ("mailto:info@a.test", "mailto:info@a.test"),
    ("http%3A%2F%2Fa.test", "http%3A%2F%2Fa.test"),
    ("Café déjà vu — 日本語 ✓", "Café déjà vu — 日本語 ✓"),
    ("http://a.test.рф/x", "http://a.test.рф/x"),
    ("http://a.testé/", "http://a.testé/"),
    ("http://a.test%2Ebad/", "http://a.test%2Ebad/"),
    ("«http://a.test»", "«https://clone.example/sub»"),
    ("见 http://a.test/x。", "见 https://clone.example/sub/x。"),
    ("“http://a.test.”", "“https://clone.example/sub.”"),
    ("", ""),
]


@pytest.fixture(scope="module")
def php_unserialize() -> Iterator[PhpUnserialize]:
    assert shutil.which("php") is not None, "php is not installed: run testenv/install-system-packages.sh"
    checker = PhpUnserialize()
    yield checker
    checker.close()


def test_every_fragment_rewrites_as_listed() -> None:
    for text, expected in FRAGMENTS:
        assert REWRITE.text(text.encode()).decode() == expected, text


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12))
def test_text_rewrites_each_occurrence_and_nothing_else(fragments: list[tuple[str, str]]) -> None:
    text = " ".join(source for source, _ in fragments).encode()
    expected = " ".join(target for _, target in fragments).encode()
    assert REWRITE.text(text) == expected
    assert REWRITE.value(text).value == expected


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12), st.sampled_from(["https://a.test/clone", "http://b.test/-"]))
def test_a_new_url_that_a_second_pass_would_read_is_written_in_one_pass(fragments: list[tuple[str, str]],
                                                                          new: str) -> None:
    rewrite = UrlRewrite(OLD, new)
    sources = [source.encode() for source, _ in fragments]
    assert rewrite.text(b" ".join(sources)) == b" ".join(rewrite.text(source) for source in sources)


@pytest.mark.parametrize(("old", "new", "text", "expected"), [
    ("https://a.test", "http://b.test", "http://a.test/x https://a.test/y", "http://b.test/x http://b.test/y"),
    ("http://a.test/", "http://b.test/", "http://a.test/x", "http://b.test/x"),
    ("http://a.test", "http://b.test/", "http://a.test/", "http://b.test/"),
    ("http://a.test/blog", "http://b.test", "http://a.test/blog/p http://a.test/blogger http://a.test/",
     "http://b.test/p http://a.test/blogger http://a.test/"),
    ("http://a.test.uk", "http://b.test", "http://a.test.uk/x http://a.test/x", "http://b.test/x http://a.test/x"),
    ("http://127.0.0.1:8081", "http://127.0.0.1:9", "http://127.0.0.1:8081/ http://127.0.0.1:80811/",
     "http://127.0.0.1:9/ http://127.0.0.1:80811/"),
    ("http://A.Test", "http://b.test", "http://a.test/x", "http://b.test/x"),
    # One pass, even where a second would find the old URL in what the first wrote.
    ("http://a.test", "https://a.test/clone", "http://a.test/x https://a.test/y",
     "https://a.test/clone/x https://a.test/clone/y"),
    ("http://a.test", "http://b.test/https:", "http://a.test//a.test", "http://b.test/https://a.test"),
], ids=["https-to-http", "trailing-slashes", "new-trailing-slash", "subdirectory-install",
        "longer-old-host", "ports", "host-case", "new-holds-old", "new-ends-in-a-scheme"])
def test_url_edge_cases(old: str, new: str, text: str, expected: str) -> None:
    assert UrlRewrite(old, new).text(text.encode()).decode() == expected


def test_only_http_urls_are_site_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        UrlRewrite("ftp://a.test", NEW)
    with pytest.raises(ValueError, match="not an http"):
        UrlRewrite("a.test", NEW)


def test_serialized_lengths_are_byte_lengths() -> None:
    value = dumps({"title": "Café ✓ http://a.test/x", "n": 3})
    assert REWRITE.value(value).value == dumps({"title": "Café ✓ https://clone.example/sub/x", "n": 3})
    assert b's:37:"Caf\xc3\xa9 \xe2\x9c\x93 https://clone.example/sub/x"' in REWRITE.value(value).value


def test_objects_of_any_class_are_walked_without_loading_them() -> None:
    value = dumps(PhpObject("Vendor\\Settings", {"\0*\0url": "http://a.test/x", "count": 2}))
    expected = dumps(PhpObject("Vendor\\Settings", {"\0*\0url": "https://clone.example/sub/x", "count": 2}))
    assert REWRITE.value(value) == (expected, Outcome.REWRITTEN)


def test_serializable_payloads_references_and_enums_are_copied_as_they_are() -> None:
    value = (b'a:4:{i:0;C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}i:1;s:13:"http://a.test";'
             b'i:2;R:3;i:3;E:11:"Suit:Hearts";}')
    assert REWRITE.value(value).value == value.replace(b's:13:"http://a.test"', b's:25:"https://clone.example/sub"')


def test_keys_are_not_rewritten() -> None:
    value = dumps({"http://a.test/": "http://a.test/"})
    assert REWRITE.value(value).value == dumps({"http://a.test/": "https://clone.example/sub/"})


def test_a_value_that_looks_serialized_but_is_corrupt_is_rewritten_as_text_and_reported() -> None:
    corrupt = b'a:1:{i:0;s:99:"http://a.test/x";}'
    assert REWRITE.value(corrupt) == (b'a:1:{i:0;s:99:"https://clone.example/sub/x";}', Outcome.UNPARSEABLE)


def test_a_corrupt_value_nested_in_a_valid_one_is_rewritten_as_text_and_reported() -> None:
    inner_corrupt = b's:5:"http://a.test";'
    value = dumps(["http://a.test/ok", inner_corrupt.decode()])
    rewritten = REWRITE.value(value)
    assert rewritten == (dumps(["https://clone.example/sub/ok", 's:5:"https://clone.example/sub";']),
                         Outcome.UNPARSEABLE)


def test_text_that_merely_resembles_serialized_data_is_rewritten_as_text() -> None:
    for text in [b"s:5 see http://a.test", b"a:1 http://a.test}", b"i:3; http://a.test", b'N; http://a.test']:
        assert not looks_serialized(text)
        assert REWRITE.value(text).value == text.replace(b"http://a.test", b"https://clone.example/sub")


def test_surrounding_whitespace_of_a_serialized_value_is_kept() -> None:
    value = b"  \n" + dumps(["http://a.test"]) + b"\n"
    assert REWRITE.value(value).value == b"  \n" + dumps(["https://clone.example/sub"]) + b"\n"


def test_nesting_as_deep_as_php_reads_is_rewritten_and_deeper_is_rewritten_as_text() -> None:
    def nested(depth: int, url: str) -> bytes:
        return b"a:1:{i:0;" * depth + dumps(url) + b"}" * depth
    assert REWRITE.value(nested(MAX_DEPTH, OLD)) == (nested(MAX_DEPTH, NEW), Outcome.REWRITTEN)
    assert REWRITE.value(nested(MAX_DEPTH + 1, OLD)) == (
        nested(MAX_DEPTH + 1, OLD).replace(b"http://a.test", NEW.encode()), Outcome.UNPARSEABLE)


def test_php_reads_exactly_as_deep_as_the_rewrite(php_unserialize: PhpUnserialize) -> None:
    def nested(depth: int) -> bytes:
        return b"a:1:{i:0;" * depth + b"N;" + b"}" * depth
    assert php_unserialize.accepts(nested(MAX_DEPTH)) and not php_unserialize.accepts(nested(MAX_DEPTH + 1))


@pytest.fixture(scope="module")
def is_serialized() -> Iterator[PhpUnserialize]:
    checker = PhpUnserialize(IS_SERIALIZED)
    yield checker
    checker.close()


_SERIALIZED_LOOKALIKES = [b"N;", b"s:1:\"x\";", b's:"x";', b's:x:"y";', b"s::\"\";", b'C:1:"x":0:{}', b"a:0:{}",
                          b"a:{}", b"O:8:\"stdClass\":0:{}", b'E:3:"A:B";', b"b:1;", b"b:1", b"i:-3;", b"d:1.5E+3;",
                          b"d:NAN;", b"i:3; ", b" \n b:0;\t", b"x:1;", b"s:1:\"x\"", b"a:1:{", b"", b"N", b"i:;",
                          "s:2:\"é\";".encode()]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)  # PHP checks each
@given(data=st.sampled_from(_SERIALIZED_LOOKALIKES) | st.binary(max_size=12).map(lambda tail: b"s:1:" + tail)
       | st.text(alphabet="sabiOECdN:;{}\"0123456789.E+- x", max_size=14).map(str.encode))
def test_what_looks_serialized_is_exactly_what_wordpress_is_serialized_says(
        data: bytes, is_serialized: PhpUnserialize) -> None:
    assert looks_serialized(data) == is_serialized.accepts(data)


def test_values_without_the_host_are_returned_as_they_are() -> None:
    value = dumps({"a": "http://b.test"})
    result = REWRITE.value(value)
    assert result.value is value and result.outcome is Outcome.UNCHANGED


# --- properties over generated PHP values ----------------------------------------------------------

_text = st.lists(st.sampled_from([source for source, _ in FRAGMENTS]) | st.text(max_size=8), max_size=5).map(
    " ".join).filter(lambda text: not looks_serialized(text.encode()))
_keys = st.integers(-5, 5) | st.text(max_size=6).filter(lambda key: not key.lstrip("-").isdigit())
_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=True) | _text)
php_values = st.recursive(_scalars, lambda children: (
    st.lists(children, max_size=4)
    | st.dictionaries(_keys, children, max_size=4)
    | st.builds(PhpObject, st.just("stdClass"), st.dictionaries(st.text(max_size=6), children, max_size=3))
    | st.builds(Nested, children)
), max_leaves=16)


def _rewritten(value: Any, rewrite: UrlRewrite) -> Any:
    """What a value must become: each string rewritten as text, the structure unchanged."""
    if isinstance(value, str):
        return rewrite.text(value.encode())
    if isinstance(value, list):
        return [_rewritten(item, rewrite) for item in value]
    if isinstance(value, dict):
        return {key: _rewritten(item, rewrite) for key, item in value.items()}
    if isinstance(value, PhpObject):
        return PhpObject(value.class_name, _rewritten(value.properties, rewrite))
    if isinstance(value, Nested):
        return Nested(_rewritten(value.inner, rewrite))
    return value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)  # PHP checks each
@given(value=php_values)
def test_serialized_values_keep_their_structure_and_php_unserializes_them(
        value: Any, php_unserialize: PhpUnserialize) -> None:
    serialized = dumps(value)
    rewritten = REWRITE.value(serialized).value
    assert rewritten == dumps(_rewritten(value, REWRITE))
    assert php_unserialize.accepts(rewritten)


@given(php_values)
def test_rewriting_twice_changes_nothing_more(value: Any) -> None:
    once = REWRITE.value(dumps(value)).value
    assert REWRITE.value(once).value == once


@given(php_values, st.sampled_from(["http://a.test", "https://a.test/", "http://a.test/blog"]),
       st.sampled_from(["http://b.test", "https://b.test:8443/x", "http://a.test.uk"]))
def test_moving_there_and_back_restores_values_that_use_one_form_of_the_url(value: Any, old: str, new: str) -> None:
    there, back = UrlRewrite(old, new), UrlRewrite(new, old)
    serialized = dumps(value)
    canonical = UrlRewrite(old, old).value(serialized).value  # every occurrence in the old URL's own form
    assume(back.needle not in canonical)  # the new URL is not already there
    assert back.value(there.value(canonical).value).value == canonical


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)  # PHP checks each
@given(value=php_values, where=st.integers(0, 10_000), delta=st.sampled_from([-1, 1]))
def test_a_value_php_rejects_is_left_as_it_is_and_one_php_accepts_stays_acceptable(
        value: Any, where: int, delta: int, php_unserialize: PhpUnserialize) -> None:
    serialized = dumps(["http://a.test/", value])
    lengths = list(re.finditer(rb's:([0-9]+):"', serialized))
    length = lengths[where % len(lengths)]
    assume(int(length.group(1)) + delta >= 0)
    corrupt = serialized[:length.start(1)] + str(int(length.group(1)) + delta).encode() + serialized[length.end(1):]
    result = REWRITE.value(corrupt)
    if php_unserialize.accepts(corrupt):  # the damage is inside a string, or made another valid value
        assert php_unserialize.accepts(result.value)
    else:
        assert result == (REWRITE.text(corrupt), Outcome.UNPARSEABLE)


def test_occurrences_count_every_form_the_rewrite_replaces_and_nothing_else() -> None:
    text = b"http://a.test/x //a.test/y http:\\/\\/a.test\\/z https://a.test.uk http://a.testing a.test"
    assert REWRITE.occurrences(text) == 3
    assert REWRITE.occurrences(REWRITE.text(text)) == 0


def test_what_remains_is_not_countable_when_the_new_url_holds_the_old_one() -> None:
    assert REWRITE.leaves_old_url_checkable
    assert not UrlRewrite("http://a.test", "http://a.test/clone").leaves_old_url_checkable


# --- the flat-array reading (one regex match) reads exactly what the token-by-token reading reads ---

def test_a_flat_array_is_read_in_one_match_with_its_lengths_and_count_checked() -> None:
    members = b's:3:"url";s:13:"http://a.test";i:-5;b:1;s:0:"";d:0.5;'
    assert rewrite_module._flat_array(3).fullmatch(members + b"}")
    assert not rewrite_module._flat_array(2).match(members + b"}")  # a count that lies
    assert not rewrite_module._flat_array(3).match(members.replace(b"s:13:", b"s:12:") + b"}")  # a length that lies
    assert not rewrite_module._flat_array(3).match(members.replace(b"s:13:", b"s:013:") + b"}")  # read token by token
    assert not rewrite_module._flat_array(1).match(b'b:1;s:1:"x";}')  # a key must be a string or an integer


def test_a_flat_array_with_a_long_string_is_read_in_one_match_when_its_length_holds() -> None:
    long = b"x" * 300 + b" http://a.test/"
    members = b's:1:"a";s:%d:"%s";i:3;s:2:"ok";}' % (len(long), long)
    assert rewrite_module._flat_array(2).match(members) is None  # longer than the lengths spelled out
    assert rewrite_module._flat_with_any_strings(rewrite_module._flat_array(2, True), members, 0)
    for lying in (members.replace(b"s:315:", b"s:314:"), members.replace(b"s:315:", b"s:316:"),
                  members.replace(b"x" * 10, b'x";xxxxxxx')):  # a `";` inside: taken to be its end
        assert rewrite_module._flat_with_any_strings(rewrite_module._flat_array(2, True), lying, 0) is None


# Long strings (beyond the lengths the flat patterns spell out), one holding what looks like its end.
_long_texts = st.sampled_from(["y" * 256, "z" * 300 + " http://a.test/x", 'q";' * 100 + "//a.test", "r" * 255])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # each undoes its patch
@given(value=php_values, long=_long_texts, where=st.integers(0, 10_000), delta=st.sampled_from([-1, 0, 1]))
def test_flat_arrays_are_rewritten_as_the_token_by_token_reading_does(
        value: Any, long: str, where: int, delta: int, monkeypatch: pytest.MonkeyPatch) -> None:
    serialized = dumps([{"u": "http://a.test/", "v": value}, {"w": value, 7: "//a.test"}, value,  # rows of two
                        {"l": long, "m": "http://a.test/"}, {"l": long, "m": value}])
    lengths = list(re.finditer(rb'[sa]:([0-9]+):', serialized))
    length = lengths[where % len(lengths)]
    assume(int(length.group(1)) + delta >= 0)
    changed = str(int(length.group(1)) + delta).encode()
    maybe_corrupt = serialized[:length.start(1)] + changed + serialized[length.end(1):]
    read_flat = REWRITE.value(maybe_corrupt)
    with monkeypatch.context() as patch:
        patch.setattr(rewrite_module, "FLAT_MEMBERS", 0)  # every array read token by token
        assert REWRITE.value(maybe_corrupt) == read_flat
