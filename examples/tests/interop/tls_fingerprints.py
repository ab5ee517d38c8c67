"""Reference JA3 and JA4 of a captured TLS ClientHello, for the gateway's fingerprint test.

Usage: tls_fingerprints.py HEX  -> prints "JA3 JA4" of the ClientHello in HEX (one or more
handshake records).

Written from the published definitions (salesforce/ja3; FoxIO JA4, TLS over TCP) on purpose
apart from the Rust implementation it checks.
"""

import hashlib
import struct
import sys


def grease(value):
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def u16s(data):
    return [v for (v,) in struct.iter_unpack(">H", data)]


def handshake(records):
    """The payloads of the handshake records at the start of `records`, joined."""
    joined = b""
    while len(records) >= 5 and records[0] == 22:
        length = struct.unpack(">H", records[3:5])[0]
        joined += records[5 : 5 + length]
        records = records[5 + length :]
    return joined


def parse(records):
    body = handshake(records)
    assert body[0] == 1, "a ClientHello"
    hello = body[4 : 4 + int.from_bytes(body[1:4], "big")]
    version = struct.unpack(">H", hello[0:2])[0]
    at = 2 + 32
    at += 1 + hello[at]
    suites_len = struct.unpack(">H", hello[at : at + 2])[0]
    suites = u16s(hello[at + 2 : at + 2 + suites_len])
    at += 2 + suites_len
    at += 1 + hello[at]
    fields = dict(version=version, suites=suites, extensions=[], groups=[], points=[],
                  sigalgs=[], versions=[], alpn=None)
    if at == len(hello):
        return fields
    end = at + 2 + struct.unpack(">H", hello[at : at + 2])[0]
    at += 2
    while at < end:
        kind, size = struct.unpack(">HH", hello[at : at + 4])
        data = hello[at + 4 : at + 4 + size]
        at += 4 + size
        fields["extensions"].append(kind)
        if kind == 10:
            fields["groups"] = u16s(data[2:])
        elif kind == 11:
            fields["points"] = list(data[1:])
        elif kind == 13:
            fields["sigalgs"] = u16s(data[2:])
        elif kind == 43:
            fields["versions"] = u16s(data[1:])
        elif kind == 16 and len(data) > 2:
            fields["alpn"] = data[3 : 3 + data[2]]
    return fields


def ja3(f):
    def join(values, drop_grease=True):
        return "-".join(str(v) for v in values if not (drop_grease and grease(v)))

    text = ",".join([str(f["version"]), join(f["suites"]), join(f["extensions"]),
                     join(f["groups"]), join(f["points"], False)])
    return hashlib.md5(text.encode()).hexdigest()


def ja4(f):
    suites = [s for s in f["suites"] if not grease(s)]
    extensions = [e for e in f["extensions"] if not grease(e)]
    versions = [v for v in f["versions"] if not grease(v)]
    version = max(versions) if versions else f["version"]
    codes = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
    alpn = f["alpn"]
    if not alpn:
        alpn_code = "00"
    elif chr(alpn[0]).isalnum() and chr(alpn[-1]).isalnum() and alpn[0] < 128 and alpn[-1] < 128:
        alpn_code = chr(alpn[0]) + chr(alpn[-1])
    else:
        alpn_code = alpn.hex()[0] + alpn.hex()[-1]
    head = "t%s%s%02d%02d%s" % (codes.get(version, "00"), "d" if 0 in extensions else "i",
                                min(len(suites), 99), min(len(extensions), 99), alpn_code)

    def short(text, empty):
        return "0" * 12 if empty else hashlib.sha256(text.encode()).hexdigest()[:12]

    sorted_suites = ",".join("%04x" % s for s in sorted(suites))
    kept = sorted(e for e in extensions if e not in (0, 16))
    text = ",".join("%04x" % e for e in kept)
    algorithms = [a for a in f["sigalgs"] if not grease(a)]
    if algorithms:
        text += "_" + ",".join("%04x" % a for a in algorithms)
    return "%s_%s_%s" % (head, short(sorted_suites, not suites), short(text, not kept))


if __name__ == "__main__":
    fields = parse(bytes.fromhex(sys.argv[1]))
    print(ja3(fields), ja4(fields))
