//! The `.npy` header: a Python dict literal with exactly the keys `'descr'` (a string),
//! `'fortran_order'` (a bool) and `'shape'` (a tuple of ints), as the format specifies.
//! Whitespace between tokens and a trailing comma are allowed (numpy writes
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`), and after the closing
//! brace only padding spaces and a final newline. Anything else is refused, and the message
//! shows the text where parsing stopped.

/// What a `.npy` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    /// The element type, such as `<f4`.
    pub descr: String,
    /// Whether the array is stored column-major.
    pub fortran_order: bool,
    /// The dimensions.
    pub shape: Vec<usize>,
}

/// Longest piece of offending text quoted in a message.
const EXCERPT_CHARS: usize = 40;

/// The first characters of `text`, for messages (quoted and escaped by the caller's `{:?}`).
pub(crate) fn excerpt(text: &str) -> &str {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn fail<T>(&self, expected: &str) -> Result<T, String> {
        Err(format!(
            "expected {expected} at byte {}, found {:?}",
            self.pos,
            excerpt(self.rest())
        ))
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos += rest.len() - trimmed.len();
    }

    /// Consumes `c` if it is next (after whitespace).
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        let found = self.rest().starts_with(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(&format!("{c:?}"))
        }
    }

    /// A run of characters up to a delimiter: what an int or a bool literal must be.
    fn token(&mut self) -> &'a str {
        self.skip_ws();
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || ",:(){}[]'\"".contains(c))
            .unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> Result<&'a str, String> {
        self.skip_ws();
        let Some(quote) = self
            .rest()
            .chars()
            .next()
            .filter(|&c| c == '\'' || c == '"')
        else {
            return self.fail("a quoted string");
        };
        let body = &self.rest()[1..];
        let Some(end) = body.find([quote, '\\', '\n']) else {
            return self.fail("a string closed on the same line");
        };
        if !body[end..].starts_with(quote) {
            return self.fail("a string without escapes or line breaks");
        }
        self.pos += 1 + end + 1;
        Ok(&body[..end])
    }

    fn bool(&mut self) -> Result<bool, String> {
        let at = self.pos;
        match self.token() {
            "True" => Ok(true),
            "False" => Ok(false),
            _ => {
                self.pos = at;
                self.skip_ws();
                self.fail("True or False")
            }
        }
    }

    /// A decimal integer as Python writes one: digits, no sign, no leading zero.
    fn int(&mut self) -> Result<usize, String> {
        self.skip_ws();
        let at = self.pos;
        let token = self.token();
        let canonical = !token.is_empty()
            && token.bytes().all(|b| b.is_ascii_digit())
            && (token == "0" || !token.starts_with('0'));
        match token.parse::<usize>() {
            Ok(n) if canonical => Ok(n),
            _ => {
                self.pos = at;
                self.fail("a non-negative decimal integer that fits in usize")
            }
        }
    }

    /// A tuple of ints: `()`, `(n,)`, `(n, m)`, `(n, m,)`.
    fn shape(&mut self) -> Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(dims);
            }
            dims.push(self.int()?);
            if self.eat(',') {
                continue;
            }
            if dims.len() == 1 {
                // `(3)` is the int 3 in Python, not a tuple.
                return self.fail("',' (a one-element tuple needs a trailing comma)");
            }
            self.expect(')')?;
            return Ok(dims);
        }
    }
}

/// Parses the header text (everything between the length field and the data).
pub(crate) fn parse_header(text: &str) -> Result<NpyHeader, String> {
    let mut p = Parser { text, pos: 0 };
    if !text.starts_with('{') {
        return p.fail("'{' (the header is a dict literal)");
    }
    p.pos = 1;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        if p.eat('}') {
            break;
        }
        let key_at = p.pos;
        let key = p.string()?;
        p.expect(':')?;
        let duplicate = match key {
            "descr" => descr.replace(p.string()?.to_owned()).is_some(),
            "fortran_order" => fortran_order.replace(p.bool()?).is_some(),
            "shape" => shape.replace(p.shape()?).is_some(),
            other => {
                return Err(format!(
                    "unknown key {other:?} at byte {key_at} (a header has exactly 'descr', \
                     'fortran_order' and 'shape')"
                ));
            }
        };
        if duplicate {
            return Err(format!(
                "key {key:?} appears twice (again at byte {key_at})"
            ));
        }
        if !p.eat(',') {
            if !p.eat('}') {
                return p.fail("',' or '}'");
            }
            break;
        }
    }
    let tail = p.rest();
    if !tail
        .strip_suffix('\n')
        .unwrap_or(tail)
        .bytes()
        .all(|b| b == b' ')
    {
        p.pos += tail.len() - tail.trim_start_matches(' ').len();
        return p.fail("only padding spaces and a final newline after the dict");
    }
    let missing = |key: &str| format!("the header has no {key:?} key");
    Ok(NpyHeader {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::read_npy;

    /// Writes a version-1 `.npy` file with `header` (padded with spaces to a multiple of 64
    /// bytes and ended with a newline, as numpy does) and `body`, and reads it.
    fn read_with_header(header: &str, body: &[u8]) -> Result<crate::data::Vectors, String> {
        let mut text = header.to_owned();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((text.len() as u16).to_le_bytes());
        bytes.extend(text.as_bytes());
        bytes.extend(body);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, &bytes).unwrap();
        read_npy(&path).map_err(|e| e.to_string())
    }

    fn f4_body(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    use super::{NpyHeader, parse_header};

    fn header(descr: &str, fortran_order: bool, shape: &[usize]) -> NpyHeader {
        NpyHeader {
            descr: descr.into(),
            fortran_order,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn every_spelling_python_and_numpy_allow_parses() {
        let cases = [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }          \n",
                header("<f4", false, &[3, 4]),
            ),
            (
                "{'descr': '|u1', 'fortran_order': True, 'shape': (10,)}",
                header("|u1", true, &[10]),
            ),
            (
                "{\"shape\": (), \"descr\": \"<f8\", \"fortran_order\": False}\n",
                header("<f8", false, &[]),
            ),
            (
                "{ 'descr' :'<f4' ,\n\t'fortran_order':False,'shape':( 0 , 7 , ) , }  ",
                header("<f4", false, &[0, 7]),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_header(text).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn malformed_headers_name_the_offending_text() {
        let cases = [
            ("", "found \"\""),
            (
                " {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}",
                "\" {'descr'",
            ),
            ("{}", "no \"descr\" key"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}",
                "trailing comma",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (03, 4)}",
                "\"03, 4)}\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)",
                "found \"\"",
            ),
            (
                "{'descr': '<\\f4', 'fortran_order': False, 'shape': (3, 4)}",
                "without escapes",
            ),
            (
                "{'descr': ['<f4'], 'fortran_order': False, 'shape': (3, 4)}",
                "\"['<f4']",
            ),
            (
                "{'descr': '<f4', 'fortran_order': false, 'shape': (3, 4)}",
                "\"false, ",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}\n\n",
                "\"\\n\\n\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 1)}",
                "99999999999999999999",
            ),
        ];
        for (text, offending) in cases {
            let err = parse_header(text).expect_err(text);
            assert!(
                err.contains(offending),
                "{text:?}: {err:?} lacks {offending:?}"
            );
        }
    }

    #[test]
    fn a_header_numpy_writes_still_parses() {
        let v = read_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
            &f4_body(12),
        )
        .unwrap();
        assert_eq!((v.dim, v.rows()), (4, 3));
        assert_eq!(v.row(2), &[8.0, 9.0, 10.0, 11.0]);
        let v = read_with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }",
            &f4_body(6),
        )
        .unwrap();
        assert_eq!(v.row(0), &[0.0, 3.0]);
    }

    #[test]
    fn lenient_headers_are_refused_with_the_offending_text() {
        let body = f4_body(12);
        let cases = [
            // A list, not a dict.
            (
                "['descr': '<f4', 'fortran_order': False, 'shape': (3, 4), ]",
                "[",
            ),
            // Garbage after the descr string.
            (
                "{'descr': '<f4'; 'x', 'fortran_order': False, 'shape': (3, 4), }",
                "; 'x'",
            ),
            // A key that is not one of the three.
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1, }",
                "key \"x\"",
            ),
            // A key missing.
            ("{'descr': '<f4', 'shape': (3, 4), }", "fortran_order"),
            // A key twice.
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}",
                "descr",
            ),
            // Not a bool.
            (
                "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3, 4), }",
                "Maybe",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 4), }",
                "0",
            ),
            // Not a tuple of ints.
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4], }",
                "[3, 4]",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }",
                "-4",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4.0), }",
                "4.0",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,, 4), }",
                ", 4)",
            ),
            // The shape swallowed by an unterminated tuple.
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, }",
                "}",
            ),
            // An unquoted string, a string not closed.
            (
                "{descr: '<f4', 'fortran_order': False, 'shape': (3, 4), }",
                "descr:",
            ),
            (
                "{'descr': '<f4, 'fortran_order': False, 'shape': (3, 4), }",
                "fortran_order",
            ),
            // Text after the dict.
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } junk",
                "junk",
            ),
            // Two commas, no separating comma.
            (
                "{'descr': '<f4',, 'fortran_order': False, 'shape': (3, 4)}",
                ", 'fortran",
            ),
            (
                "{'descr': '<f4' 'fortran_order': False, 'shape': (3, 4)}",
                "'fortran",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(
                |(header, offending)| match read_with_header(header, &body) {
                    Ok(_) => Some(format!("accepted {header}")),
                    Err(e) if !e.contains(offending) => Some(format!(
                        "{header}: message {e:?} does not show {offending:?}"
                    )),
                    Err(_) => None,
                },
            )
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
