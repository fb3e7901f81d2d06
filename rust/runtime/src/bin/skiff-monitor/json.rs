//! The little JSON the monitor speaks, without serde: string escaping (Docker's
//! json-file rules), RFC 3339 timestamps, decimal numbers, and reading one string
//! field out of a runtime log line (`{"level":"error","msg":"...","time":"..."}`).

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `data` to `out` as the inside of a JSON string: `"` and `\` escaped,
/// `\n`, `\r`, `\t` by name, other control characters as `\u00XX`, and every byte
/// that is not part of valid UTF-8 as `\ufffd` (one per byte, as Docker does).
/// At most 6 output bytes per input byte.
pub fn escape_into(out: &mut Vec<u8>, data: &[u8]) {
    let mut rest = data;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                escape_valid(out, valid.as_bytes());
                return;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                escape_valid(out, valid);
                let bad = e.error_len().unwrap_or(after.len());
                for _ in 0..bad {
                    out.extend_from_slice(b"\\ufffd");
                }
                rest = &after[bad..];
            }
        }
    }
}

/// Escapes bytes known to be valid UTF-8: only ASCII needs care.
fn escape_valid(out: &mut Vec<u8>, data: &[u8]) {
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&data[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    out.extend_from_slice(&data[start..]);
}

/// Appends `"<escaped s>"`.
pub fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// Appends a signed decimal integer (no formatting machinery).
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_uint(out, v.unsigned_abs());
}

/// Appends an unsigned decimal integer.
pub fn push_uint(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Length of an RFC 3339 timestamp with nanoseconds: `2026-11-28T11:07:09.085123456Z`.
pub const RFC3339_LEN: usize = 30;

/// Formats seconds and nanoseconds since the epoch (UTC) as RFC 3339 with nine
/// fractional digits.
pub fn rfc3339(secs: i64, nanos: u32) -> [u8; RFC3339_LEN] {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    put_digits(&mut b[0..4], y.clamp(0, 9999) as u32);
    put_digits(&mut b[5..7], m);
    put_digits(&mut b[8..10], d);
    put_digits(&mut b[11..13], tod / 3600);
    put_digits(&mut b[14..16], tod / 60 % 60);
    put_digits(&mut b[17..19], tod % 60);
    put_digits(&mut b[20..29], nanos.min(999_999_999));
    b
}

/// Writes `v` as zero-padded decimal filling `dst`.
fn put_digits(dst: &mut [u8], mut v: u32) {
    for c in dst.iter_mut().rev() {
        *c = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The value of the top-level string field `key` in the JSON object `line`, or None
/// when the line is not an object, has no such field, or it is not a string.
/// Values of other fields (numbers, literals, nested objects and arrays) are skipped.
pub fn string_field(line: &[u8], key: &str) -> Option<String> {
    let mut p = Parser { s: line, i: 0 };
    p.ws();
    p.eat(b'{')?;
    loop {
        p.ws();
        if p.peek()? == b'}' {
            return None;
        }
        let k = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        if k == key && p.peek()? == b'"' {
            return p.string();
        }
        p.skip_value()?;
        p.ws();
        match p.next()? {
            b',' => continue,
            _ => return None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            v = v * 16 + (self.next()? as char).to_digit(16)?;
        }
        Some(v)
    }

    /// A JSON string (at the opening quote), unescaped.
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let c = match self.next()? {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xd800..0xdc00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                                } else {
                                    0xfffd
                                }
                            } else {
                                hi
                            };
                            char::from_u32(cp).unwrap_or('\u{fffd}')
                        }
                        c => c as char, // \" \\ \/
                    };
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                c => out.push(c),
            }
        }
    }

    /// Skips any JSON value: strings, and everything else up to the next `,` or
    /// closing bracket at depth 0.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0u32;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return Some(()),
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => return Some(()),
                _ => {}
            }
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(data: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, data);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_json_file() {
        assert_eq!(esc(b"plain text"), "plain text");
        assert_eq!(esc(b"a\"b\\c"), r#"a\"b\\c"#);
        assert_eq!(esc(b"l1\nl2\r\n\t"), r"l1\nl2\r\n\t");
        assert_eq!(
            esc(b"\x00\x01\x1b[0m\x1f\x7f"),
            "\\u0000\\u0001\\u001b[0m\\u001f\x7f"
        );
        assert_eq!(esc("héllo €𝄞".as_bytes()), "héllo €𝄞");
        // Every invalid byte is one U+FFFD, valid text around it kept.
        assert_eq!(esc(b"a\xffb"), r"a\ufffdb");
        assert_eq!(esc(b"\xe2\x82"), r"\ufffd\ufffd"); // truncated sequence
        assert_eq!(esc(b"\xc0\xaf!"), r"\ufffd\ufffd!"); // overlong
        assert_eq!(esc(b"\xed\xa0\x80"), r"\ufffd\ufffd\ufffd"); // surrogate
        assert_eq!(esc(b"ok\xf0\x9f\x98"), r"ok\ufffd\ufffd\ufffd");
        // The worst case stays within 6 bytes per input byte.
        assert_eq!(esc(&[0x01; 100]).len(), 600);
        assert_eq!(esc(&[0xff; 100]).len(), 600);
    }

    #[test]
    fn escaped_output_is_read_back_exactly() {
        let text = "tab\t \"q\" back\\ nl\n ctl\x02 ü";
        let mut line = b"{\"log\":\"".to_vec();
        escape_into(&mut line, text.as_bytes());
        line.extend_from_slice(b"\"}");
        assert_eq!(string_field(&line, "log").as_deref(), Some(text));
    }

    #[test]
    fn numbers() {
        let mut b = Vec::new();
        push_int(&mut b, 0);
        b.push(b' ');
        push_int(&mut b, -137);
        b.push(b' ');
        push_int(&mut b, i64::MIN);
        b.push(b' ');
        push_uint(&mut b, u64::MAX);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "0 -137 -9223372036854775808 18446744073709551615"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // leap century
        assert_eq!(civil_from_days(47_482), (2100, 1, 1));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not leap
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
        // Every day of 1900..2200 follows the previous one.
        let mut prev = civil_from_days(-25_567);
        assert_eq!(prev, (1900, 1, 1));
        for day in -25_566..84_000 {
            let cur = civil_from_days(day);
            let next_in_month = (prev.0, prev.1, prev.2 + 1);
            let next_month = if prev.1 == 12 {
                (prev.0 + 1, 1, 1)
            } else {
                (prev.0, prev.1 + 1, 1)
            };
            assert!(
                cur == next_in_month || cur == next_month,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
    }

    #[test]
    fn rfc3339_nanos() {
        let s = |secs, ns| String::from_utf8(rfc3339(secs, ns).to_vec()).unwrap();
        assert_eq!(s(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            s(1_795_864_029, 85_123_456),
            "2026-11-28T11:07:09.085123456Z"
        );
        assert_eq!(
            s(951_782_399, 999_999_999),
            "2000-02-28T23:59:59.999999999Z"
        );
        assert_eq!(s(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(s(-1, 500_000_000), "1969-12-31T23:59:59.500000000Z");
        assert_eq!(s(4_102_444_800, 0), "2100-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn runtime_log_fields() {
        let line = br#"{"level":"error","msg":"container_linux.go:380: starting \"x\" \u00e9 \ud83d\ude00","time":"2026-01-01T00:00:00Z"}"#;
        assert_eq!(string_field(line, "level").as_deref(), Some("error"));
        assert_eq!(
            string_field(line, "msg").as_deref(),
            Some("container_linux.go:380: starting \"x\" é 😀")
        );
        let nested = br#" { "a": {"msg": "inner"}, "n": -1.5e3, "l": [1, "]", {}], "t": true, "msg" : "outer" } "#;
        assert_eq!(string_field(nested, "msg").as_deref(), Some("outer"));
        assert_eq!(string_field(nested, "t"), None); // not a string
        assert_eq!(string_field(nested, "missing"), None);
        assert_eq!(string_field(b"not json", "msg"), None);
        assert_eq!(string_field(b"{\"msg\":\"unterminated", "msg"), None);
        assert_eq!(string_field(b"", "msg"), None);
    }
}
