//! The array text form: `{1,2}`, `{{1,2},{3,4}}`, `{NULL,"a \"b\""}`, `{}` and
//! `[0:1]={7,8}`. Yields the raw element texts (None for NULL) and the dimension lengths;
//! the caller parses each element as the element type.
//!
//! The nesting depth is bounded (Postgres allows 6 dimensions) so hostile input cannot
//! recurse deeply; arrays must be rectangular.

/// Postgres' MAXDIM.
const MAX_DIMS: usize = 6;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct RawArray {
    pub dims: Vec<usize>,
    pub elements: Vec<Option<String>>,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    /// Length of each dimension, fixed by the first sub-array seen at that depth.
    dims: Vec<Option<usize>>,
    /// Depth at which elements appear (all leaves must be at the same depth).
    leaf_depth: Option<usize>,
    elements: Vec<Option<String>>,
}

type R<T> = Result<T, String>;

pub(super) fn parse(text: &str) -> R<RawArray> {
    let (declared, body) = split_bounds(text)?;
    let mut p = Parser {
        s: body.as_bytes(),
        pos: 0,
        dims: Vec::new(),
        leaf_depth: None,
        elements: Vec::new(),
    };
    p.skip_ws();
    p.level(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!("unexpected text after the array at byte {}", p.pos));
    }
    let dims: Vec<usize> = if p.elements.is_empty() {
        Vec::new()
    } else {
        p.dims.iter().map(|d| d.unwrap_or(0)).collect()
    };
    if let Some(declared) = declared {
        if declared != dims {
            return Err(format!(
                "declared dimensions {declared:?} do not match the contents {dims:?}"
            ));
        }
    }
    Ok(RawArray {
        dims,
        elements: p.elements,
    })
}

/// `[lo:hi][lo:hi]=rest` → the declared lengths and `rest`; no decoration → `None`.
fn split_bounds(text: &str) -> R<(Option<Vec<usize>>, &str)> {
    let t = text.trim_start();
    if !t.starts_with('[') {
        return Ok((None, t));
    }
    let (decl, body) = t.split_once('=').ok_or("array bounds without '='")?;
    let mut lens = Vec::new();
    for dim in decl.trim_end().strip_prefix('[').unwrap_or(decl).split('[') {
        let inner = dim
            .strip_suffix(']')
            .ok_or_else(|| format!("bad array bounds {decl:?}"))?;
        let (lo, hi) = inner
            .split_once(':')
            .ok_or_else(|| format!("bad array bounds {decl:?}"))?;
        let lo: i64 = lo.trim().parse().map_err(|_| "bad lower bound")?;
        let hi: i64 = hi.trim().parse().map_err(|_| "bad upper bound")?;
        if hi < lo {
            return Err("upper bound below lower bound".into());
        }
        lens.push(usize::try_from(hi - lo + 1).map_err(|_| "array bounds out of range")?);
        if lens.len() > MAX_DIMS {
            return Err("too many array dimensions".into());
        }
    }
    Ok((Some(lens), body))
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.pos))
        }
    }

    /// One `{...}` at nesting `depth`.
    fn level(&mut self, depth: usize) -> R<()> {
        if depth >= MAX_DIMS {
            return Err("too many array dimensions".into());
        }
        self.expect(b'{')?;
        if self.dims.len() <= depth {
            self.dims.push(None);
        }
        self.skip_ws();
        let mut count = 0usize;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            // Only the whole array may be empty.
            return if depth == 0 {
                Ok(())
            } else {
                Err("empty sub-array".into())
            };
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(b'{') {
                self.level(depth + 1)?;
            } else {
                self.leaf(depth)?;
            }
            count += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.pos)),
            }
        }
        match self.dims[depth] {
            None => self.dims[depth] = Some(count),
            Some(n) if n == count => {}
            Some(_) => return Err("sub-arrays have different lengths".into()),
        }
        Ok(())
    }

    fn leaf(&mut self, depth: usize) -> R<()> {
        match self.leaf_depth {
            None => self.leaf_depth = Some(depth),
            Some(d) if d == depth => {}
            Some(_) => return Err("elements at different nesting depths".into()),
        }
        let elem = if self.peek() == Some(b'"') {
            Some(self.quoted()?)
        } else {
            self.unquoted()?
        };
        self.elements.push(elem);
        Ok(())
    }

    fn quoted(&mut self) -> R<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted array element".into()),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = *self
                        .s
                        .get(self.pos + 1)
                        .ok_or("dangling backslash in array element")?;
                    out.push(c);
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| "array element is not UTF-8".into())
    }

    /// An unquoted element up to `,` or `}`; `NULL` (any case, unescaped) is SQL NULL.
    fn unquoted(&mut self) -> R<Option<String>> {
        let mut out = Vec::new();
        let mut escaped = false;
        // Length of `out` up to its last escaped byte: trailing whitespace after it is
        // trimmed, escaped whitespace is kept.
        let mut keep = 0;
        loop {
            match self.peek() {
                None => return Err("unterminated array".into()),
                Some(b',') | Some(b'}') => break,
                Some(b'{') | Some(b'"') => {
                    return Err(format!("unexpected character at byte {}", self.pos))
                }
                Some(b'\\') => {
                    let c = *self
                        .s
                        .get(self.pos + 1)
                        .ok_or("dangling backslash in array element")?;
                    out.push(c);
                    keep = out.len();
                    escaped = true;
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        while out.len() > keep && out.last().is_some_and(|c| c.is_ascii_whitespace()) {
            out.pop();
        }
        if out.is_empty() {
            return Err(format!("empty array element at byte {}", self.pos));
        }
        if !escaped && out.eq_ignore_ascii_case(b"NULL") {
            return Ok(None);
        }
        String::from_utf8(out)
            .map(Some)
            .map_err(|_| "array element is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn els(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|e| e.map(str::to_string)).collect()
    }

    #[test]
    fn shapes() {
        assert_eq!(
            parse("{}").unwrap(),
            RawArray {
                dims: vec![],
                elements: vec![]
            }
        );
        let a = parse("{{1,2},{3,4}}").unwrap();
        assert_eq!(a.dims, vec![2, 2]);
        assert_eq!(
            a.elements,
            els(&[Some("1"), Some("2"), Some("3"), Some("4")])
        );
        let a = parse(r#"{NULL,"NULL","a \"b\"",c\,d, e }"#).unwrap();
        assert_eq!(
            a.elements,
            els(&[None, Some("NULL"), Some("a \"b\""), Some("c,d"), Some("e")])
        );
        let a = parse("[0:1]={7,8}").unwrap();
        assert_eq!(a.dims, vec![2]);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "{",
            "{1,2",
            "{{1,2},{3}}",
            "{{1},2}",
            "{,}",
            "{1}x",
            "[0:2]={1}",
            "{{}}",
            "{{{{{{{1}}}}}}}",
            "{\"a}",
            "[1:2={1,2}",
            "{a\\",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
