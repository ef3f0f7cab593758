//! A strict byte-level JSON scanner for the hot paths of parsing: detection's
//! field extraction ([`crate::parse::fields`]) and the transform's record view
//! ([`crate::parse::view::RecordView::skim`]).
//!
//! Most of the time of both goes to validating and skipping the parts of a record
//! that are not kept (headers, rule groups). The scanner does that job with a
//! word-at-a-time search for the end of each string and without serde's visitor
//! calls, and it is strict: what it accepts is valid JSON (RFC 8259). It handles
//! the usual line only; on anything else it returns [`Bail`] and the caller reads
//! the line again with serde_json, which then gives the same values or the same
//! error as if the scanner did not exist. It bails on:
//!
//! - any byte below 0x20 in the line (control characters are invalid inside
//!   strings; the tabs allowed between tokens are rare in logs);
//! - a `\u` escape anywhere, and any escape in a key or a kept string (serde_json
//!   decodes those and checks surrogates);
//! - integers of more than 19 digits, and fractions or exponents out of `f64` range;
//! - nesting deeper than [`MAX_DEPTH`];
//! - anything invalid, and whatever a caller's contract rejects (it bails too, so
//!   that serde_json words the error).

/// The line is left to the serde_json path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bail;

/// A scanning step.
pub(crate) type Step<T> = Result<T, Bail>;

/// Deepest nesting scanned (serde_json's own limit is 128).
pub(crate) const MAX_DEPTH: usize = 100;

/// Whether `b` holds a byte below 0x20, sixteen bytes at a time (a loop the
/// compiler turns into vector compares).
fn has_control(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(16);
    let found = chunks
        .by_ref()
        .any(|c| c.iter().fold(false, |acc, &x| acc | (x < 0x20)));
    found || chunks.remainder().iter().any(|&x| x < 0x20)
}

/// The first `"` or `\\` in `b` at or after `from`, eight bytes at a time: the
/// strings of WAF records are short, where a word-at-a-time loop beats a call into
/// a vectorised search.
#[inline(always)]
fn quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` equal to `c` (exact up to the first match).
    let eq = |w: u64, c: u8| {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let hits = eq(w, b'"') | eq(w, b'\\');
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = b.get(i..)?;
    rest.iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| i + p)
}

/// A position in a line.
pub(crate) struct Skim<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Skim<'a> {
    /// At the start of `text`; [`Bail`] when it holds a control byte.
    pub(crate) fn new(text: &'a str) -> Step<Skim<'a>> {
        if has_control(text.as_bytes()) {
            return Err(Bail);
        }
        Ok(Skim {
            text,
            b: text.as_bytes(),
            i: 0,
        })
    }

    /// Only whitespace is left.
    pub(crate) fn end(&mut self) -> Step<()> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Walks the object at the position (after whitespace): `value(skim, key)`
    /// reads each member's value (the position is at it); `depth` is the object's.
    /// Escaped keys bail.
    #[inline(always)]
    pub(crate) fn members(
        &mut self,
        depth: usize,
        mut value: impl FnMut(&mut Self, &'a str) -> Step<()>,
    ) -> Step<()> {
        self.ws();
        if self.peek()? != b'{' || depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return Err(Bail);
            }
            let key = self.string()?.ok_or(Bail)?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            value(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// The text of the value at the position, skipped (validated); `depth` is the
    /// value's container's.
    pub(crate) fn raw(&mut self, depth: usize) -> Step<&'a str> {
        let start = self.i;
        self.skip(depth)?;
        self.text.get(start..self.i).ok_or(Bail)
    }

    /// A string without escapes or `null` (`None`); anything else bails.
    pub(crate) fn text_or_null(&mut self) -> Step<Option<&'a str>> {
        match self.peek()? {
            b'"' => self.string()?.map(Some).ok_or(Bail),
            _ => self.literal(b"null").map(|()| None),
        }
    }

    #[inline(always)]
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Step<u8> {
        self.b.get(self.i).copied().ok_or(Bail)
    }

    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> Step<()> {
        if self.peek()? == c {
            self.i += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// At a `"`: reads the string; its text when it has no escape, `None` when it
    /// has (valid) escapes.
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Step<Option<&'a str>> {
        let start = self.i + 1;
        let mut from = start;
        let mut plain = true;
        loop {
            let at = quote_or_backslash(self.b, from).ok_or(Bail)?;
            if self.b[at] == b'"' {
                self.i = at + 1;
                return Ok(if plain {
                    Some(self.text.get(start..at).ok_or(Bail)?)
                } else {
                    None
                });
            }
            match self.b.get(at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                    plain = false;
                    from = at + 2;
                }
                _ => return Err(Bail),
            }
        }
    }

    /// A literal (`true`, `false`, `null`) at the position.
    #[inline]
    pub(crate) fn literal(&mut self, word: &[u8]) -> Step<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        self.i - from
    }

    /// A number: its value, and whether serde_json reads it as an integer (what a
    /// status accepts).
    pub(crate) fn number(&mut self) -> Step<(f64, bool)> {
        let start = self.i;
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Bail),
        }
        let int_end = self.i;
        let mut integer = true;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Bail);
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Bail);
            }
            integer = false;
        }
        if !integer {
            let text = self.text.get(start..self.i).ok_or(Bail)?;
            return serde_json::from_str::<f64>(text)
                .map(|v| (v, false))
                .map_err(|_| Bail);
        }
        let digits = self.b.get(int_start..int_end).ok_or(Bail)?;
        if digits.len() > 19 {
            return Err(Bail);
        }
        let n = digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if !negative {
            return Ok((n as f64, true));
        }
        // As serde_json: a negative that is no `i64` (`-0`, below `i64::MIN`) is a float.
        let as_int = (n as i64).wrapping_neg() < 0;
        Ok((-(n as f64), as_int))
    }

    /// Skips any value, validating it.
    pub(crate) fn skip(&mut self, depth: usize) -> Step<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.skip_container(b'}', true, depth + 1),
            b'[' => self.skip_container(b']', false, depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => Err(Bail),
        }
    }

    /// Skips an object (`keyed`) or an array at its opening bracket.
    fn skip_container(&mut self, close: u8, keyed: bool, depth: usize) -> Step<()> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Ok(());
        }
        loop {
            if keyed {
                if self.peek()? != b'"' {
                    return Err(Bail);
                }
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.skip(depth)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                c if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }
}

/// For the scanners' differential tests: `n` random edits of `line` (one to three
/// bytes of `alphabet` replacing, inserted before or removed at random places;
/// fixed `seed`), each edit that is still UTF-8 given to `check`.
#[cfg(test)]
pub(crate) fn each_random_edit(
    line: &str,
    alphabet: &[u8],
    seed: u64,
    n: usize,
    mut check: impl FnMut(&str),
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    for _ in 0..n {
        let mut bytes = line.as_bytes().to_vec();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..bytes.len());
            let c = alphabet[rng.random_range(0..alphabet.len())];
            match rng.random_range(0..3) {
                0 => bytes[at] = c,
                1 => bytes.insert(at, c),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        if let Ok(edited) = std::str::from_utf8(&bytes) {
            check(edited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_word_search_finds_the_first_quote_or_backslash() {
        let alphabet = b"ab\"\\\x01\x7f\x80\xff!#[";
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let b: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let from = rng.random_range(0..=len);
            let naive = b[from..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\')
                .map(|p| from + p);
            assert_eq!(quote_or_backslash(&b, from), naive, "{b:?} from {from}");
        }
    }

    #[test]
    fn raw_values_and_members() {
        let text = r#" {"a" : [1, {"b":null}] ,"c":"x\"y","d":-0.5e+3} "#;
        let mut s = Skim::new(text).unwrap();
        let mut seen = Vec::new();
        s.members(1, |s, key| {
            seen.push((key, s.raw(1)?));
            Ok(())
        })
        .unwrap();
        s.end().unwrap();
        assert_eq!(
            seen,
            [
                ("a", r#"[1, {"b":null}]"#),
                ("c", r#""x\"y""#),
                ("d", "-0.5e+3")
            ]
        );
        assert_eq!(Skim::new("{\"a\":\t1}").err(), Some(Bail));
        let mut s = Skim::new(r#"{"a":1} {}"#).unwrap();
        s.members(1, |s, _| s.skip(1)).unwrap();
        assert_eq!(s.end(), Err(Bail));
    }
}
