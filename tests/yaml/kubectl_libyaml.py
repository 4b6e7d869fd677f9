"""The reference side of the YAML differential test (tests/yaml_corpus.rs).

Reads manifests the way `kubectl` does, with libyaml as the parser:
- the stream is cut into documents at `---` lines exactly as Kubernetes' YAMLReader
  (k8s.io/apimachinery/pkg/util/yaml) cuts it, and each piece is read on its own;
- each piece is parsed by libyaml (PyYAML's C extension, `yaml.CParser`: events only) and its
  first document is decoded with the rules of go-yaml v2 (sigs.k8s.io/yaml/goyaml.v2): YAML 1.1
  booleans (y/yes/on/...), `~`/null, ints with `_`, 0x/0o/0b/0 prefixes, int64 then uint64 then
  float, timestamps kept as strings, quoted and block scalars as strings, anchors bound when the
  alias is read, `<<` merges applied in place in key order, go-yaml's alias-ratio limit;
- the value is then made JSON the way sigs.k8s.io/yaml does it: keys become strings (ints in
  decimal, floats as Go's FormatFloat(f, 'g', -1, 32), bools as true/false; null, uint64 and
  collection keys are errors) and floats go through Go's json.Marshal (integral values become
  integers; NaN and infinities are errors).
JSON files (`.json`) are read as a stream of JSON values, as kubectl's JSON path does.

Usage: kubectl_libyaml.py ROOT  -> one JSON line per file under ROOT (sorted):
  {"file": relative path, "docs": [JSON value of each non-null document], "errors": N}
where N counts the documents that kubectl would refuse (syntax or decoding errors).
"""

import json
import math
import os
import re
import struct
import sys

import yaml

if not getattr(yaml, "__with_libyaml__", False):
    sys.exit("PyYAML was built without libyaml: install the PyPI wheel (pip install PyYAML)")

STR, INT, FLOAT, BOOL, NULL = (
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
)
TIMESTAMP, BINARY, MERGE = (
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:binary",
    "tag:yaml.org,2002:merge",
)


class Refused(Exception):
    """What kubectl would refuse for this document."""


# go-yaml v2 resolve.go: the table of words, and which first characters may start one.
WORDS = {}
for value, words in (
    (True, "y Y yes Yes YES true True TRUE on On ON"),
    (False, "n N no No NO false False FALSE off Off OFF"),
):
    for w in words.split():
        WORDS[w] = (BOOL, value)
for w in ("", "~", "null", "Null", "NULL"):
    WORDS[w] = (NULL, None)
for w in (".nan", ".NaN", ".NAN"):
    WORDS[w] = (FLOAT, math.nan)
for w in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"):
    WORDS[w] = (FLOAT, math.inf)
for w in ("-.inf", "-.Inf", "-.INF"):
    WORDS[w] = (FLOAT, -math.inf)
WORDS["<<"] = (MERGE, "<<")
HINT_WORD = set("yYnNtTfFoO~")
HINT_NUMBER = set("+-0123456789")
YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
TIMESTAMP_FORMATS = (
    re.compile(r"^\d{4}-\d{1,2}-\d{1,2}[Tt]\d{1,2}:\d{1,2}:\d{1,2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"),
    re.compile(r"^\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{1,2}:\d{1,2}(\.\d{1,9})?$"),
    re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$"),
)
I64 = (-(2**63), 2**63 - 1)
U64 = 2**64 - 1


def go_parse_int(s, base=0):
    """strconv.ParseInt/ParseUint(s, base, 64) without the range check: an int or None."""
    neg = s.startswith("-")
    body = s[1:] if s[:1] in "+-" else s
    if base == 0:
        low = body[:2].lower()
        if low in ("0x", "0o", "0b"):
            base, body = {"0x": 16, "0o": 8, "0b": 2}[low], body[2:]
        elif body.startswith("0") and len(body) > 1:
            base, body = 8, body[1:]
        else:
            base = 10
    if not body or not all(c in "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)] for c in body):
        return None
    v = int(body, base)
    return -v if neg else v


def go_parse_float(s):
    """strconv.ParseFloat(s, 64) for the decimal forms go-yaml can reach."""
    try:
        if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
            return None
        f = float(s)
    except ValueError:
        return None
    # Go reports a range error (and go-yaml then keeps the text) where Python gives inf.
    return None if math.isinf(f) else f


def is_timestamp(s):
    i = 0
    while i < len(s) and s[i].isdigit():
        i += 1
    if i != 4 or i == len(s) or s[i] != "-":
        return False
    return any(f.match(s) for f in TIMESTAMP_FORMATS)


def resolve(tag, text):
    """go-yaml v2 resolve(): (tag, value) of a scalar."""
    if tag not in ("", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP):
        return tag, text
    rtag, out = _resolve(tag, text)
    if tag in ("", rtag, STR, BINARY):
        return rtag, out
    if tag == FLOAT and rtag == INT:
        return FLOAT, float(out)
    raise Refused(f"cannot decode {rtag} `{text}` as a {tag}")


def _resolve(tag, text):
    if tag in (STR, BINARY):
        return STR, text
    first = text[:1]
    if text == "" or first in HINT_WORD or first in HINT_NUMBER or first == ".":
        if text in WORDS:
            return WORDS[text]
        if first == ".":
            f = go_parse_float(text)
            if f is not None:
                return FLOAT, f
        elif first in HINT_NUMBER:
            if tag in ("", TIMESTAMP) and is_timestamp(text):
                return TIMESTAMP, text
            plain = text.replace("_", "")
            v = go_parse_int(plain)
            if v is not None and I64[0] <= v <= U64:
                return INT, v
            if YAML_FLOAT.match(plain):
                f = go_parse_float(plain)
                if f is not None:
                    return FLOAT, f
            if plain.startswith(("0b", "-0b")):
                neg = plain.startswith("-")
                v = go_parse_int(plain[3:] if neg else plain[2:], 2)
                if v is not None:
                    v = -v if neg else v
                    if I64[0] <= v <= U64:
                        return INT, v
    return STR, text


# Nodes: ("scalar", tag, value, implicit, line) | ("seq", children) | ("map", children) |
# ("alias", target-node).
def compose(events):
    """go-yaml v2 parser.go: the first document of a piece as a node tree, or None."""
    anchors = {}
    stack = []
    root = None
    for ev in events:
        kind = type(ev)
        if kind is yaml.DocumentEndEvent:
            break
        if kind in (yaml.StreamStartEvent, yaml.DocumentStartEvent, yaml.StreamEndEvent):
            continue
        if kind is yaml.AliasEvent:
            if ev.anchor not in anchors:
                raise Refused(f"unknown anchor '{ev.anchor}' referenced")
            node = ["alias", anchors[ev.anchor], ev.anchor]
        elif kind is yaml.ScalarEvent:
            node = ["scalar", ev.tag or "", ev.value, ev.implicit[0]]
        elif kind in (yaml.SequenceStartEvent, yaml.MappingStartEvent):
            node = ["seq" if kind is yaml.SequenceStartEvent else "map", []]
        elif kind in (yaml.SequenceEndEvent, yaml.MappingEndEvent):
            node = stack.pop()
            if not stack:
                root = node
            continue
        else:
            continue
        if getattr(ev, "anchor", None) is not None and kind is not yaml.AliasEvent:
            anchors[ev.anchor] = node
        if stack:
            stack[-1][1].append(node)
        elif node[0] in ("scalar", "alias"):
            root = node
        if node[0] in ("seq", "map"):
            stack.append(node)
    return root


class Decoder:
    """go-yaml v2 decode.go into interface{}, with its excessive-aliasing rule."""

    def __init__(self):
        self.decode_count = 0
        self.alias_count = 0
        self.alias_depth = 0
        self.active = set()

    def ratio(self):
        d = self.decode_count
        if d <= 400000:
            return 0.99
        if d >= 4000000:
            return 0.10
        return 0.99 - 0.89 * ((d - 400000) / 3600000.0)

    def decode(self, n):
        self.decode_count += 1
        if self.alias_depth > 0:
            self.alias_count += 1
        if (
            self.alias_count > 100
            and self.decode_count > 1000
            and self.alias_count / self.decode_count > self.ratio()
        ):
            raise Refused("document contains excessive aliasing")
        kind = n[0]
        if kind == "scalar":
            _, tag, text, implicit = n
            if tag == "" and not implicit:
                return text
            rtag, value = resolve(tag, text)
            if rtag == TIMESTAMP:
                return text
            return value
        if kind == "alias":
            target = n[1]
            if id(target) in self.active:
                raise Refused(f"anchor '{n[2]}' value contains itself")
            self.active.add(id(target))
            self.alias_depth += 1
            try:
                return self.decode(target)
            finally:
                self.alias_depth -= 1
                self.active.discard(id(target))
        if kind == "seq":
            return [self.decode(c) for c in n[1]]
        out = {}
        self.mapping_into(n, out)
        return out

    def mapping_into(self, n, out):
        children = n[1]
        for i in range(0, len(children), 2):
            k, v = children[i], children[i + 1]
            if k[0] == "scalar" and k[2] == "<<" and (k[3] or k[1] == MERGE):
                self.merge(v, out)
                continue
            key = self.decode(k)
            if isinstance(key, (dict, list)):
                raise Refused("invalid map key")
            out[key] = self.decode(v)

    def merge(self, n, out):
        def target(x):
            return x[1] if x[0] == "alias" else x

        def into(x):
            if target(x)[0] != "map":
                raise Refused("map merge requires map or sequence of maps as the value")
            self.decode_count += 1  # the mapping node itself, as d.unmarshal counts it
            if x[0] == "alias":
                self.alias_depth += 1
                try:
                    self.mapping_into(target(x), out)
                finally:
                    self.alias_depth -= 1
            else:
                self.mapping_into(x, out)

        if target(n)[0] == "seq" and n[0] != "alias":
            for item in reversed(n[1]):
                into(item)
        else:
            into(n)


def go_float32_g(f):
    """strconv.FormatFloat(f, 'g', -1, 32)."""
    if math.isnan(f):
        return ".nan"
    if math.isinf(f):
        return ".inf" if f > 0 else "-.inf"
    f32 = struct.unpack("f", struct.pack("f", f))[0]
    for p in range(1, 10):
        s = "%.*e" % (p - 1, f32)
        if struct.unpack("f", struct.pack("f", float(s)))[0] == f32:
            break
    mant, exp = s.split("e")
    exp = int(exp)
    digits = mant.replace(".", "").replace("-", "").rstrip("0") or "0"
    neg = "-" if f32 < 0 or (f32 == 0 and math.copysign(1, f32) < 0) else ""
    if exp < -4 or exp >= max(len(digits), 6 if True else 0) and exp >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return "%s%se%s%02d" % (neg, m, "-" if exp < 0 else "+", abs(exp))
    if exp >= len(digits) - 1:
        return neg + digits + "0" * (exp - len(digits) + 1)
    if exp >= 0:
        return neg + digits[: exp + 1] + "." + digits[exp + 1 :]
    return neg + "0." + "0" * (-exp - 1) + digits


def to_json(v):
    """sigs.k8s.io/yaml convertToJSONableObject, then Go's json.Marshal."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if isinstance(k, bool):
                ks = "true" if k else "false"
            elif isinstance(k, int):
                if k > I64[1]:
                    raise Refused("unsupported map key of type uint64")
                ks = str(k)
            elif isinstance(k, float):
                ks = go_float32_g(k)
            elif isinstance(k, str):
                ks = k
            else:
                raise Refused("unsupported map key of type nil")
            out[ks] = to_json(x)
        return out
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise Refused("json: unsupported value")
        if v == int(v) and abs(v) < 1e21:
            return int(v)
    return v


def pieces(text):
    """k8s.io/apimachinery YAMLReader: the text between `---` lines; None after a bad separator."""
    buf = []
    for line in text.splitlines(keepends=True):
        if line.startswith("---"):
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                yield None
                return
            if buf:
                yield "".join(buf)
                buf = []
            continue
        buf.append(line)
    if buf:
        yield "".join(buf)


def load_yaml(text):
    docs, errors = [], 0
    for piece in pieces(text):
        if piece is None:
            errors += 1
            break
        try:
            node = compose(yaml.parse(piece, Loader=yaml.CLoader))
            if node is None:
                continue
            value = to_json(Decoder().decode(node))
        except (yaml.YAMLError, Refused, RecursionError):
            errors += 1
            continue
        if value is not None:
            docs.append(value)
    return docs, errors


def load_json(text):
    docs, errors = [], 0
    dec = json.JSONDecoder()
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            break
        try:
            value, i = dec.raw_decode(text, i)
        except ValueError:
            errors += 1
            break
        docs.append(value)
    return docs, errors


def decode_bytes(raw):
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8")


def main():
    root = sys.argv[1]
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith((".yaml", ".yml", ".json")):
                files.append(os.path.relpath(os.path.join(d, n), root))
    sys.setrecursionlimit(20000)
    out = sys.stdout
    for rel in sorted(files):
        with open(os.path.join(root, rel), "rb") as f:
            raw = f.read()
        try:
            text = decode_bytes(raw)
        except UnicodeDecodeError:
            docs, errors = [], 1
        else:
            docs, errors = (load_json if rel.endswith(".json") else load_yaml)(text)
        out.write(json.dumps({"file": rel, "docs": docs, "errors": errors}, ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
