#!/usr/bin/env python3
"""Writes corpus.tsv: kind<TAB>value<TAB>text. `text` holds `value` once
(kind none: no personal data at all). Deterministic (seeded). Run from this
folder: python3 gen_corpus.py"""
import random
r = random.Random(20261126)
rows = []

def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(r.randrange(10))
    for check in range(10):
        ds = digits + [check]
        s = 0
        for i, d in enumerate(reversed(ds)):
            if i % 2 == 1:
                d *= 2
                if d > 9: d -= 9
            s += d
        if s % 10 == 0:
            return ''.join(map(str, ds))

def groups(s, sizes, sep):
    out, i = [], 0
    for n in sizes:
        out.append(s[i:i+n]); i += n
    if i < len(s): out.append(s[i:])
    return sep.join(g for g in out if g)

ctx = ["{}", "contact: {}", "Customer {} called back", "value={} ok", "sent to {}.", "({})", "[{}]", "from {}, retrying", "'{}'", "note {} end"]

emails = ["alice@example.com", "Bob.Smith@corp.example.org", "j.doe+crm@mail.example.net", "x_y-z@sub.domain.io",
          "first.last@company.co.uk", "user123@example.de", "UPPER.CASE@EXAMPLE.COM", "sales%eu@example.fr",
          "a@b.co", "lead.owner@crm-host.example", "o'neil@example.com".replace("'", ""), "marie-claire@example.be",
          "noreply@notifications.example.com", "test.user.2026@example.travel", "k@example.museum"]
for e in emails:
    for t in r.sample(ctx, 3):
        rows.append(("email", e, t.format(e)))

phones = ["+1 555 123 4567", "+44 20 7946 0958", "+33 1 23 45 67 89", "(555) 123-4567", "555-123-4567",
          "555.123.4567", "020 7946 0958", "+4915112345678", "+1-555-123-4567", "555 123 4567",
          "+49 30 1234567", "+61 2 9876 5432", "(020) 7946 0958", "+34 612 34 56 78", "+1 (555) 123-4567",
          "030 12345678", "+81 3-1234-5678", "+7 495 123-45-67"]
for p in phones:
    for t in r.sample(ctx, 2):
        rows.append(("phone", p, t.format(p)))

ipv4 = ["203.0.113.45", "192.168.1.10", "10.0.0.1", "172.16.254.3", "8.8.8.8", "255.255.255.255", "1.1.1.1",
        "198.51.100.200", "100.64.0.7", "127.0.0.1", "169.254.10.20", "44.33.22.11"]
for ip in ipv4:
    for t in r.sample(ctx, 3):
        rows.append(("ipv4", ip, t.format(ip)))

ipv6 = ["2001:db8::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1ff:fe23:4567:890a", "::1",
        "2001:db8:85a3::8a2e:370:7334", "::ffff:192.0.2.128", "2606:4700:4700::1111", "fd00::abcd:1"]
for ip in ipv6:
    for t in ["{}", "client {} connected", "addr={} ok"]:
        rows.append(("ipv6", ip, t.format(ip)))

brands = [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15), ("37", 15),
          ("6011", 16), ("65", 16), ("3530", 16), ("36", 14), ("62", 16), ("4", 19)]
for prefix, n in brands:
    for fmt in range(3):
        num = luhn_complete(prefix, n)
        if fmt == 0: v = num
        elif fmt == 1: v = groups(num, [4, 6, 5] if n == 15 else [4, 4, 4, 4], " ")
        else: v = groups(num, [4, 6, 5] if n == 15 else [4, 4, 4, 4], "-")
        rows.append(("card", v, r.choice(ctx).format(v)))

def iban(cc, bban):
    s = bban + cc + "00"
    num = ''.join(str(int(c, 36)) for c in s)
    check = 98 - int(num) % 97
    return cc + "%02d" % check + bban

bbans = {"DE": lambda: "%018d" % r.randrange(10**18), "GB": lambda: "NWBK" + "%014d" % r.randrange(10**14),
         "FR": lambda: "%023d" % r.randrange(10**23), "NL": lambda: "ABNA" + "%010d" % r.randrange(10**10),
         "ES": lambda: "%020d" % r.randrange(10**20), "IT": lambda: "X" + "%022d" % r.randrange(10**22),
         "CH": lambda: "%017d" % r.randrange(10**17), "BE": lambda: "%012d" % r.randrange(10**12),
         "AT": lambda: "%016d" % r.randrange(10**16), "PL": lambda: "%024d" % r.randrange(10**24)}
for cc, f in bbans.items():
    for spaced in (False, True, False):
        v = iban(cc, f())
        if spaced: v = groups(v, [4] * 8, " ")
        rows.append(("iban", v, r.choice(ctx).format(v)))

for _ in range(24):
    area = r.choice([x for x in range(1, 900) if x != 666])
    v = "%03d-%02d-%04d" % (area, r.randrange(1, 100), r.randrange(1, 10000))
    if r.random() < 0.2: v = v.replace("-", " ")
    rows.append(("ssn", v, r.choice(ctx).format(v)))

negatives = [
    "2026-02-04T20:30:45.123456Z", "2026-02-04 20:30:45", "04.02.2026", "20:30:45", "at 2026-11-26", "took 1234567 ms",
    "550e8400-e29b-41d4-a716-446655440000", "trace 4bf92f3577b34da6a3ce929d0e0e4736", "v1.2.3.4", "version 10.0.19041.1",
    "build 1.2.3.4 released", "release 2.4.0.1", "LEAD-0001234567", "CRM-88812345", "crm_id 0012345678", "order 123456789012 shipped",
    "order #4111111111111112", "4111 1111 1111 1112", "5500 0000 0000 0005", "1234 5678 9012 3456", "666-12-3456", "000-12-3456",
    "123-00-4567", "900-12-3456", "123-45-0000", "999.1.1.1", "1.2.3", "10.0.0", "256.1.1.1", "00:1a:2b:3c:4d:5e",
    "MAC 00:1A:2B:3C:4D:5E", "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "5551234567",
    "invoice 20260204001", "amount 1,234,567.89", "zip 94107", "pi 3.14159265", "10.0.0.0/8", "2001:db8::/32",
    "user@localhost", "email me at alice at example dot com", "@channel please review", "DE00123456781234567890",
    "GB82WEST1234569876543", "NL00ABNA0123456789", "score 87", "workflow sales_lead_management", "duration_ms 1234",
    "id 9876543210123", "ticket 2026-0001234", "ISBN 978-3-16-148410-0", "pid 123456", "port 8080", "HTTP/1.1 200",
    "lat 52.5200066 lon 13.404954", "ratio 0.123456789", "2026/02/04", "12/31/2026", "+", "(555)", "call me later",
    "Tel: n/a", "1e10", "0x7fffffff", "uuid 123e4567-e89b-12d3-a456-426614174000", "LEAD-555-123-4567",
    "sku ABC-123-456-789", "batch 2026-02-04-001", "epoch 1738700000", "epoch ms 1738700000123", "size 52428800 bytes",
    "cron 0 0 * * *", "color #ff00ff", "C:\\Users\\lead\\file.txt", "path /var/log/app/audit.log", "semver 1.2.3-rc.1",
    "ipv6-ish 1:2", "time 12:34", "ratio 16:9", "1.2.3.4.5", "a::b::c", "example.com", "https://example.com/path?q=1",
    "key=value;other=thing", "GUID {21EC2020-3AEA-4069-A2DD-08002B30309D}", "route 65000:100", "temp 36.6",
    "count 1 2 3 4 5 6 7", "digits 12 34 56 78 90 12 34 56", "ab12cd34ef56gh78", "year 2026 month 02",
    "range 100-200", "fraction 3/4", "money $1,000,000", "phone: unknown", "ssn: redacted", "card ending",
    "ref 2026020412345", "code 31415926535897", "acct 0000 0000 0000", "pin 1234", "otp 123456",
    "ts 1738700000.123456", "lot 12-3456789", "serial SN-2026-000123", "rev 3f9a1c0b", "span 00f067aa0ba902b7",
]
for n in negatives:
    rows.append(("none", "", n))

with open("corpus.tsv", "w") as f:
    f.write("# kind\tvalue\ttext (generated by gen_corpus.py; text holds value once)\n")
    for k, v, t in rows:
        assert k == "none" or t.count(v) == 1, (k, v, t)
        f.write("%s\t%s\t%s\n" % (k, v, t))
print(len(rows), "rows,", sum(1 for x in rows if x[0] == "none"), "negatives")
