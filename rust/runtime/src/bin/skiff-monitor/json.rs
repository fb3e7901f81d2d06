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
