"""Multipart bodies (web/forms.py) must parse as werkzeug's own parser parses them, limits included."""

from __future__ import annotations

import io
import os

import pytest
from urllib3 import encode_multipart_formdata
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from web.forms import MultipartFormParser

BIG = os.urandom(300_000)  # over the size kept in memory: spooled to a file


def parsed(parser_class: type[FormDataParser], body: bytes, content_type: str, **limits) -> tuple[list, list]:
    parser = parser_class(silent=True, **limits)
    environ = {
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "REQUEST_METHOD": "POST",
        "wsgi.input": io.BytesIO(body),
    }
    _, form, files = parser.parse_from_environ(environ)
    uploads = [(name, f.filename, f.content_type, f.read()) for name, f in files.items(multi=True)]
    return list(form.items(multi=True)), uploads


BODIES = {
    "one image": [("image", ("seven.png", b"\x89PNG fake", "image/png"))],
    "many images and a field": [("image", (f"{n}.png", bytes([n]) * n, "image/png")) for n in range(40)]
    + [("read", "number")],
    "an empty file input, as browsers send it": [("image", ("", b"", "application/octet-stream"))],
    "a big file": [("file", ("model.keras", BIG, "application/octet-stream")), ("card", '{"a": 1}')],
    "names beyond ASCII": [("image", ("sieben-\u00e4.png", b"x", "image/png")), ("note", "gr\u00fc\u00df")],
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_body_parses_as_werkzeug_parses_it(name):
    body, content_type = encode_multipart_formdata(BODIES[name])
    ours = parsed(MultipartFormParser, body, content_type)
    assert ours == parsed(FormDataParser, body, content_type)
    assert ours[0] or ours[1]  # something was read


def test_curl_bodies_parse():
    boundary = "------------------------d74496d66958873e"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="seven.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG\r\n--not the boundary\r\n"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    ours = parsed(MultipartFormParser, body, content_type)
    assert ours == parsed(FormDataParser, body, content_type)
    assert ours[1] == [("image", "seven.png", "image/png", b"\x89PNG\r\n--not the boundary\r\n")]


def test_a_field_that_is_not_utf8_reads_with_replacements():
    body, content_type = encode_multipart_formdata([("read", b"\xffdigit")])
    assert parsed(MultipartFormParser, body, content_type)[0] == [("read", "\ufffddigit")]


def test_more_parts_than_allowed_is_too_large():
    body, content_type = encode_multipart_formdata([("image", (f"{n}.png", b"x", "image/png")) for n in range(11)])
    for parser_class in (FormDataParser, MultipartFormParser):
        with pytest.raises(RequestEntityTooLarge):
            parsed(parser_class, body, content_type, max_form_parts=10)
        assert len(parsed(parser_class, body, content_type, max_form_parts=11)[1]) == 11


def test_a_field_over_the_memory_limit_is_too_large_but_a_file_is_not():
    body, content_type = encode_multipart_formdata([("card", "x" * 1001)])
    for parser_class in (FormDataParser, MultipartFormParser):
        with pytest.raises(RequestEntityTooLarge):
            parsed(parser_class, body, content_type, max_form_memory_size=1000)
    body, content_type = encode_multipart_formdata([("image", ("a.png", b"x" * 5000, "image/png"))])
    assert len(parsed(MultipartFormParser, body, content_type, max_form_memory_size=1000)[1][0][3]) == 5000


@pytest.mark.parametrize(
    "body",
    [b"", b"not multipart at all", b'--b\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\nab'],
    ids=["empty", "garbage", "cut short"],
)
def test_a_malformed_body_reads_as_nothing(body):
    assert parsed(MultipartFormParser, body, "multipart/form-data; boundary=b") == ([], [])
