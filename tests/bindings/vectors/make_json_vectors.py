#!/usr/bin/python3
"""Writes json_vectors.json: JSON texts and what Python makes of them, for tests/bindings/json_test.cpp.

Each vector is {"input": text, "python_json": json.dumps(json.loads(text), sort_keys=True),
"python_repr": str(json.loads(text))}; both are null when json.loads rejects the text.
Deterministic (fixed seed). Run from the repo root with the system Python:
    /usr/bin/python3 tests/bindings/vectors/make_json_vectors.py
"""
import json
import math
import os
import random
import struct
import sys

# Where to probe python_repr's printability table: at the edges of the ranges, computed live
# here. The expected strings come from repr() itself, so a stale .inc fails the test.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../bindings"))
from json_python_printable import non_printable_ranges  # noqa: E402

random.seed(20240517)

HAND_WRITTEN = [
    # The specs' examples (file-cache.md §1.2, image-cache.md §2.2).
    '{"xyz": 123}',
    '{"method_name": "mymethod", "params": {"contig_length": 123}}',
    '{"xyz":123,"abc":[1,2.0,{"b":1,"a":"é"}]}',
    '{"queries": [{"bucket": "Left +Y Axis", "isOverlay": false, "query": '
    '{"topx": 8, "starting_time": null, "x": 1.0}}], "imageType": "png"}',
    '{"a": 1}',
    '{"a":"it\'s","b":"say \\"hi\\"","c":1e5}',
    # Scalars at the top level (str() of a str is the str itself).
    'null', 'true', 'false', '0', '-0', '1', '-1', '"x"', '"it\'s"', '""', '1.5', '"\\u00e9"',
    # Integers beyond 2^53 keep their digits.
    '123456789012345678901234567890', '-123456789012345678901234567890',
    '9007199254740992', '9007199254740993', '18446744073709551616', '[1e2, 100, -0, 0]',
    # Floats.
    '1e5', '1E5', '1e+5', '1e16', '1e15', '1e-7', '1e-4', '1e-5', '0.1', '-0.0', '0.0', '-0e0',
    '2.5', '1.0', '100.0', '0.30000000000000004', '1e22', '1e-323', '5e-324', '2e-324', '1e-400',
    '1.7976931348623157e308', '1.7976931348623159e308', '1e400', '-1e400', '123456789.123456789',
    '9999999999999998.0', '9999999999999999.0', '12345678901234567890.0', '0.000123', '1.5e300',
    '3.141592653589793', '2.718281828459045235360287', '1e-10', '4.35', '0.5e-4', '-1.0E-0',
    '[1.0, 2.50, 1e1, 1.0e+16, 1.0e-16]',
    # NaN and infinities are accepted and written back.
    'NaN', 'Infinity', '-Infinity', '[NaN, Infinity, -Infinity]', '{"a": NaN}',
    # Escapes and control characters.
    '"\\n\\r\\t\\b\\f\\/\\\\\\""', '"a\\u0000b"', '"\\u001f\\u0001\\u007f\\u0080\\u009f"',
    '["\\u0007", "\\u000b", "\\u001b"]', '["\x7f"]', '["tab\\tand\\nnewline"]',
    '["back\\\\slash", "quote\'s", "dq\\"", "both\'\\""]', '["\'", "\\"", "\'\\""]',
    '["/", "\\/", "<\\/script>"]', '["\\u0041\\u0042"]', '["\\u00E9\\u00e9"]',
    # Unicode: BMP, astral, surrogate escapes (joined, lone, reversed).
    '["é", "€", "日本語", "😀", "\U0001F600x"]',
    '["\\ud83d\\ude00", "\\uD83D\\uDE00", "\\ud800", "\\udc00", "\\ud800\\u0041", "\\udc00\\ud800"]',
    '["\\ud83d\\ud83d\\ude00", "a\\ud83d", "\\ud83d\\u00e9"]', '{"\\ud800": 1, "\\ue000": 2}',
    '["\\u00a0", "\\u00ad", "\\u0085", "\\u2028", "\\u2029", "\\u200b", "\\ufeff", "\\ue000"]',
    '["\\u0378", "\\u3000", "\\u0300", "\\u00ff", "\\u0100", "\\uffff", "\\ufffd", "\\u1680"]',
    '["\U000E0001", "\U000F0000", "\U0010FFFF", "\U0001D11E", "\U00020000", "\U000E0100"]',
    '["a\u00a0b", "\u2028", "\u0085", "\u061c", "\u180e", "\u2066"]',
    # Key order: Python sorts by code point (astral after U+FFFF, unlike UTF-16 order).
    '{"b": 1, "a": 2, "B": 3, "é": 4, "😀": 5, "\\uffff": 6, "\\ue000": 7, "": 8, "aa": 9}',
    '{"z": {"y": [3, {"b": null, "a": true}], "x": "X"}, "a": []}',
    # Duplicate keys: last value wins, first position kept.
    '{"a": 1, "b": 2, "a": 3}', '{"b": 1, "a": 2, "b": 3}', '{"a": {"x": 1}, "a": {"y": 2}}',
    '{"k": 1, "k": 2, "k": 3}',
    # Empty and nested containers, whitespace.
    '{}', '[]', '[{}]', '{"a": {}}', '[[]]', '[[[[[[[[[[1]]]]]]]]]]', '{"a": [{"b": [{"c": {}}]}]}',
    ' [ 1 , 2 ] ', '\t{\r\n"a"\t:\n1 }\n', '[1,2,3]', '{"a":1,"b":[true,false,null]}',
    '  "spaced"  ', '\n\n[\n\n]\n\n',
    # Rejected by Python (both results null).
    '', ' ', '[1,]', '{"a":1,}', '{"a" 1}', '{a: 1}', "{'a': 1}", '[1 2]', '01', '1.', '.5', '-',
    '+1', '1e', '1e+', 'tru', 'nul', 'nan', 'inf', '-NaN', 'infinity', '"abc', '"\\x"', '"\\u12"',
    '"\\u12g4"', '"\\ud800\\u12"', '"a\nb"', '"\x01"', '"\t"', '[1] x', '{} {}', '[', ']', '{',
    '[1, [2, ]]', '{"a": }', '{"a": 1 "b": 2}', '{1: 2}', '"\\', '[-]', '--1', '0x10', '1_000',
    '\ufeff[1]', '[\u00a0]', '{"a":1}}', 'True', 'None', '[.1]', '[1.e5]', '[-.5]',
]


def vector(text):
    try:
        value = json.loads(text)
    except ValueError:  # JSONDecodeError is a ValueError
        return {"input": text, "python_json": None, "python_repr": None}
    result = {"input": text, "python_json": json.dumps(value, sort_keys=True),
              "python_repr": str(value)}
    result["python_repr"].encode("utf-8")  # the C++ test reads the file as UTF-8
    return result


def random_double():
    while True:
        value = struct.unpack("<d", random.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            return value


def float_texts():
    """Floats written the shortest way, with excess digits, and near powers of two."""
    texts = []
    for _ in range(120):
        value = random_double()
        texts.append(random.choice([repr(value), "%.17g" % value, "%.25e" % value]))
    for _ in range(60):
        value = round(random.uniform(-1e6, 1e6), random.randint(0, 8))
        texts.append(repr(value) if random.random() < 0.5 else "%.12e" % value)
    for exponent in range(-1074, 1024, 41):
        power = 2.0 ** exponent
        texts.append("[%r, %r, %r]" % (power, math.nextafter(power, 0), math.nextafter(power, math.inf)))
    for exponent in range(-20, 25):
        texts.append("[%s, %s]" % ("1e%d" % exponent, "%.1fe%d" % (random.uniform(1, 10), exponent)))
    return texts


def boundary_texts():
    """Every edge of every non-printable range, so python_repr's table is checked exhaustively."""
    codes = sorted({code for first, last in non_printable_ranges()
                    for code in (first - 1, first, last, last + 1) if 0x7F <= code <= 0x10FFFF})
    texts = []
    for start in range(0, len(codes), 48):
        strings = ["".join(chr(code) for code in codes[start + i:start + i + 6])
                   for i in range(0, 48, 6) if codes[start + i:start + i + 6]]
        has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for s in strings for c in s)
        texts.append(json.dumps(strings, ensure_ascii=has_surrogate or random.random() < 0.5))
    return texts


def random_string():
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0xFF), (0x100, 0xD7FF), (0xD800, 0xDFFF),
             (0xE000, 0xFFFF), (0x10000, 0x10FFFF), (0x27, 0x27), (0x22, 0x22), (0x5C, 0x5C)]
    return "".join(chr(random.randint(*random.choice(pools))) for _ in range(random.randint(0, 8)))


def random_json_text(depth=0):
    """Random documents written with random spacing, escaping and duplicate keys."""
    space = lambda: random.choice(["", "", " ", "\n", "\t ", "\r\n"])
    # The top level is a container: str() of a top-level str may hold lone surrogates.
    scalars = ["int", "bigint", "float", "string", "literal"] if depth > 0 else []
    kind = random.choice(scalars + (["array", "object"] * 2 if depth < 4 else []))
    if kind == "int":
        return str(random.randint(-10**6, 10**6))
    if kind == "bigint":
        return str(random.randint(-10**40, 10**40))
    if kind == "float":
        return random.choice([repr(random_double()), repr(random.uniform(-100, 100)), "1e%d" % random.randint(-30, 30)])
    if kind == "string":
        text = random_string()
        surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return json.dumps(text, ensure_ascii=surrogate or random.random() < 0.5)
    if kind == "literal":
        return random.choice(["true", "false", "null", "NaN", "Infinity", "-Infinity"])
    if kind == "array":
        items = [random_json_text(depth + 1) for _ in range(random.randint(0, 4))]
        return "[" + space() + ("," + space()).join(items) + space() + "]"
    keys = [random.choice(["a", "b", "A", "é", "key", random_string()]) for _ in range(random.randint(0, 5))]
    members = []
    for key in keys:
        surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in key)
        members.append(json.dumps(key, ensure_ascii=surrogate or random.random() < 0.5) + space() + ":" +
                       space() + random_json_text(depth + 1))
    return "{" + space() + ("," + space()).join(members) + space() + "}"


def main():
    texts = HAND_WRITTEN + float_texts() + boundary_texts() + [random_json_text() for _ in range(150)]
    vectors = [vector(text) for text in texts]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "json_vectors.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(vectors, out, ensure_ascii=True, indent=1)
        out.write("\n")
    print(f"{len(vectors)} vectors ({sum(v['python_json'] is None for v in vectors)} invalid) -> {path}")


main()
