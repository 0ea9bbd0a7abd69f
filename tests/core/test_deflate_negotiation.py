"""permessage-deflate negotiation (RFC 7692) from ``Sec-WebSocket-Extensions``
header values: the RFC 6455 section 9.1 grammar (several headers, comma
lists, quoted values, whitespace, malformed elements), which offers are
declined, and what we answer to the first acceptable one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replaywire.config import Config, ConfigError
from replaywire.ws.extensions import DeflateParams, negotiate_deflate, parse_extensions


def negotiate(*values: str, client_window_bits: int = 15) -> tuple[str, DeflateParams] | None:
    agreed = negotiate_deflate(
        [v.encode("latin-1") for v in values], client_window_bits=client_window_bits
    )
    if agreed is None:
        return None
    header, params = agreed
    return header.decode("ascii"), params


# --- parsing ---------------------------------------------------------------------


def test_parse_lists_every_offer_in_order_across_headers() -> None:
    assert parse_extensions(
        [
            b"permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
            b'permessage-deflate;server_max_window_bits="10";client_no_context_takeover',
        ]
    ) == [
        ("permessage-deflate", (("client_max_window_bits", None),)),
        ("x-webkit-deflate-frame", ()),
        (
            "permessage-deflate",
            (("server_max_window_bits", "10"), ("client_no_context_takeover", None)),
        ),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("  ,  , ", []),
        ("a", [("a", ())]),
        ("A;B=C", [("a", (("b", "C"),))]),
        ("a ; b = 1 ;c", [("a", (("b", "1"), ("c", None)))]),
        ("a,,b", [("a", ()), ("b", ())]),
        ("a;b\t=\t2\t,\tc", [("a", (("b", "2"),)), ("c", ())]),
        # Quoted values are unquoted, quoted-pairs unescaped ...
        ('a; b="12"', [("a", (("b", "12"),))]),
        ('a; b="1\\2"', [("a", (("b", "12"),))]),
        # ... but must be tokens once unquoted: the element is dropped.
        ('a; b="1 2", c', [("c", ())]),
        ('a; b="x,y", c', [("c", ())]),
        ('a; b="", c', [("c", ())]),
        # Malformed elements are skipped; the others still count.
        ("a; =1, b", [("b", ())]),
        ("a;; b, c", [("c", ())]),
        ("a b, c", [("c", ())]),
        ("; a, b", [("b", ())]),
        ("a; b=, c", [("c", ())]),
        ("a; b=c d, e", [("e", ())]),
        ("=, a", [("a", ())]),
        # A comma inside a quoted string does not end the element being skipped.
        ('a b="x, c", d', [("d", ())]),
        # An unterminated quote swallows the rest of the header.
        ('a; b="1, c', []),
        ('x y "z, c', []),
    ],
)
def test_parse_shapes(
    value: str, expected: list[tuple[str, tuple[tuple[str, str | None], ...]]]
) -> None:
    assert parse_extensions([value.encode()]) == expected


@given(st.binary(max_size=80))
def test_parse_never_raises(value: bytes) -> None:
    for name, params in parse_extensions([value]):
        assert name
        assert all(p for p, _ in params)


# --- what we answer --------------------------------------------------------------


def test_browser_offer() -> None:
    # Chrome, Safari and the websockets client all send this. The client is
    # required not to keep its context (RFC 7692 7.1.1.1 allows it unasked),
    # so that an oversized message can be skipped.
    assert negotiate("permessage-deflate; client_max_window_bits") == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " client_max_window_bits=15",
        DeflateParams(15, 15, True),
    )


def test_bare_offer_gets_both_no_context_takeovers() -> None:
    assert negotiate("permessage-deflate") == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        DeflateParams(15, 15, True),
    )


def test_every_parameter() -> None:
    assert negotiate(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=10; client_max_window_bits=12"
    ) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=10; client_max_window_bits=12",
        DeflateParams(
            server_max_window_bits=10, client_max_window_bits=12, client_no_context_takeover=True
        ),
    )


@pytest.mark.parametrize(
    ("offered", "config", "answered"),
    [
        ("client_max_window_bits", 15, 15),
        ("client_max_window_bits", 10, 10),
        ("client_max_window_bits=12", 15, 12),
        ("client_max_window_bits=12", 10, 10),
        ("client_max_window_bits=8", 15, 8),
        ('client_max_window_bits="9"', 15, 9),
    ],
)
def test_client_window_is_the_smaller_of_offer_and_config(
    offered: str, config: int, answered: int
) -> None:
    agreed = negotiate(f"permessage-deflate; {offered}", client_window_bits=config)
    assert agreed is not None
    header, params = agreed
    assert header.endswith(f"; client_max_window_bits={answered}")
    assert params.client_max_window_bits == answered


def test_client_window_is_never_answered_unless_offered() -> None:
    # RFC 7692 7.1.2.2: the client would fail the connection.
    agreed = negotiate("permessage-deflate", client_window_bits=9)
    assert agreed == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        DeflateParams(15, 15, True),
    )


@pytest.mark.parametrize("bits", range(8, 16))
def test_server_window_is_echoed(bits: int) -> None:
    agreed = negotiate(f"permessage-deflate; server_max_window_bits={bits}")
    assert agreed is not None
    header, params = agreed
    assert header == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        f" server_max_window_bits={bits}"
    )
    assert params.server_max_window_bits == bits
    # zlib cannot compress with 8 bits: such a client gets plain frames.
    assert params.server_compresses == (bits >= 9)


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; unknown_param",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=abc",
        'permessage-deflate; server_max_window_bits="1 0"',
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=100",
        "permessage-deflate; server_no_context_takeover=1",
        'permessage-deflate; client_no_context_takeover=""',
        "permessage-deflate; client_no_context_takeover=true",
        "x-webkit-deflate-frame",
        "deflate-frame; server_max_window_bits=10",
        "permessage-deflate-x",
    ],
)
def test_declined_offers(offer: str) -> None:
    assert negotiate(offer) is None


def test_no_header_no_extension() -> None:
    assert negotiate() is None
    assert negotiate("") is None


def test_first_acceptable_offer_wins() -> None:
    # Declined, then accepted, then acceptable too but later.
    agreed = negotiate(
        "permessage-deflate; server_max_window_bits=16, "
        "permessage-deflate; server_max_window_bits=12, "
        "permessage-deflate"
    )
    assert agreed is not None
    assert agreed[1].server_max_window_bits == 12


def test_offers_in_several_headers_are_read_in_order() -> None:
    agreed = negotiate(
        "x-webkit-deflate-frame",
        "permessage-deflate; foo",
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=9",
    )
    assert agreed == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        DeflateParams(15, 15, True),
    )


def test_malformed_elements_do_not_hide_good_ones() -> None:
    agreed = negotiate(
        'permessage-deflate; x="unterminated, permessage-deflate', "permessage-deflate"
    )
    # The first header is swallowed by its open quote; the second counts.
    assert agreed is not None
    agreed = negotiate("permessage-deflate;; a, permessage-deflate; client_max_window_bits=9")
    assert agreed is not None
    assert agreed[1].client_max_window_bits == 9


def test_names_are_case_insensitive() -> None:
    agreed = negotiate("PerMessage-Deflate; Client_Max_Window_Bits=11")
    assert agreed is not None
    assert agreed[1].client_max_window_bits == 11


@given(
    st.permutations(
        [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits=11",
            "client_max_window_bits",
        ]
    ),
    st.integers(9, 15),
)
def test_parameter_order_does_not_matter(params: list[str], config: int) -> None:
    agreed = negotiate("permessage-deflate; " + "; ".join(params), client_window_bits=config)
    assert agreed is not None
    assert agreed[1] == DeflateParams(11, config, True)


# --- configuration ---------------------------------------------------------------


def test_config_defaults_and_bounds() -> None:
    config = Config()
    assert config.ws_deflate is True
    assert config.ws_deflate_client_window_bits == 15
    assert Config.from_env({"WS_DEFLATE": "0", "WS_DEFLATE_CLIENT_WINDOW_BITS": "9"}).replace(
        port=1
    ) == Config(ws_deflate=False, ws_deflate_client_window_bits=9, port=1)
    for bad in (8, 16, 0):
        with pytest.raises(ConfigError, match="WS_DEFLATE_CLIENT_WINDOW_BITS"):
            Config(ws_deflate_client_window_bits=bad)
