//! Splits SOQL text into tokens with byte offsets. Never fails: a character that starts no token
//! becomes a [`Tok::Bad`] token, which the parser reports where it meets it.

use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, dispatch, opt, peek, preceded, repeat};
use winnow::prelude::*;
use winnow::stream::{AsChar, LocatingSlice};
use winnow::token::{any, one_of, take_while};

/// Lexer input: text that knows its offsets.
type Input<'s> = LocatingSlice<&'s str>;

/// The kind of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A name or keyword.
    Ident,
    /// A single-quoted string; the token text includes the quotes.
    Str,
    /// A number.
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh[:]mm)`.
    DateTime,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// `:`
    Colon,
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// Text that starts no token: a stray character or an unterminated string.
    Bad,
    /// End of input.
    Eof,
}

/// A token: its kind, its text and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token<'s> {
    /// What it is.
    pub kind: Tok,
    /// The text as written.
    pub text: &'s str,
    /// Byte offset in the query text.
    pub pos: usize,
}

impl Token<'_> {
    /// Whether this is the identifier `word`, ignoring case.
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == Tok::Ident && self.text.eq_ignore_ascii_case(word)
    }

    /// How the token reads in `unexpected token: '…'`.
    pub fn display(&self) -> &str {
        match self.kind {
            Tok::Eof => "<EOF>",
            _ => self.text,
        }
    }
}

/// Splits `soql` into tokens, always ending with one [`Tok::Eof`].
pub(crate) fn tokenize(soql: &str) -> Vec<Token<'_>> {
    let mut input = LocatingSlice::new(soql);
    let mut tokens: Vec<Token<'_>> = repeat(0.., preceded(multispace0, token))
        .parse_next(&mut input)
        .unwrap_or_default();
    tokens.push(Token {
        kind: Tok::Eof,
        text: "",
        pos: soql.len(),
    });
    tokens
}

/// One token (after whitespace). Fails only at end of input.
fn token<'s>(input: &mut Input<'s>) -> winnow::Result<Token<'s>> {
    dispatch! {peek(any);
        '\'' => string,
        '0'..='9' | '-' => alt((datetime.value(Tok::DateTime), date.value(Tok::Date), number, bad_char)),
        'a'..='z' | 'A'..='Z' | '_' => take_while(1.., is_ident_char).value(Tok::Ident),
        '(' => '('.value(Tok::LParen),
        ')' => ')'.value(Tok::RParen),
        ',' => ','.value(Tok::Comma),
        '.' => '.'.value(Tok::Dot),
        ':' => ':'.value(Tok::Colon),
        '=' => '='.value(Tok::Eq),
        '!' => alt(("!=".value(Tok::Ne), bad_char)),
        '<' => alt(("<=".value(Tok::Le), "<>".value(Tok::Ne), '<'.value(Tok::Lt))),
        '>' => alt((">=".value(Tok::Ge), '>'.value(Tok::Gt))),
        _ => bad_char,
    }
    .with_taken()
    .with_span()
    .map(|((kind, text), span)| Token {
        kind,
        text,
        pos: span.start,
    })
    .parse_next(input)
}

/// Whether `c` may continue an identifier.
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A single character that starts no token.
fn bad_char(input: &mut Input<'_>) -> winnow::Result<Tok> {
    any.value(Tok::Bad).parse_next(input)
}

/// A quoted string with backslash escapes; unterminated strings swallow the rest as [`Tok::Bad`].
fn string(input: &mut Input<'_>) -> winnow::Result<Tok> {
    '\''.parse_next(input)?;
    let body = repeat::<_, _, (), _, _>(
        0..,
        alt((
            ('\\', any).void(),
            one_of(|c| c != '\\' && c != '\'').void(),
        )),
    );
    let closed = (body, opt('\'')).map(|((), end)| end.is_some());
    closed
        .map(|ok| if ok { Tok::Str } else { Tok::Bad })
        .parse_next(input)
}

/// Exactly `n` ASCII digits.
fn digits<'s>(n: usize) -> impl Parser<Input<'s>, &'s str, winnow::error::ContextError> {
    take_while(n, AsChar::is_dec_digit)
}

/// `YYYY-MM-DD`.
fn date(input: &mut Input<'_>) -> winnow::Result<()> {
    (digits(4), '-', digits(2), '-', digits(2))
        .void()
        .parse_next(input)
}

/// `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh[:]mm)`.
fn datetime(input: &mut Input<'_>) -> winnow::Result<()> {
    let fraction = opt(('.', digit1));
    let zone = alt((
        one_of(['Z', 'z']).void(),
        (one_of(['+', '-']), digits(2), opt(':'), digits(2)).void(),
    ));
    (
        date,
        one_of(['T', 't']),
        (digits(2), ':', digits(2), ':', digits(2)),
        fraction,
        zone,
    )
        .void()
        .parse_next(input)
}

/// `-?digits[.digits][e±digits]`.
fn number(input: &mut Input<'_>) -> winnow::Result<Tok> {
    (
        opt('-'),
        digit1,
        opt(('.', digit1)),
        opt((one_of(['e', 'E']), opt(one_of(['+', '-'])), digit1)),
    )
        .value(Tok::Number)
        .parse_next(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Tok, &str)> {
        tokenize(s).into_iter().map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn lexes_a_query() {
        let toks = kinds("SELECT Id FROM Account WHERE Name != 'a\\'b' AND x <= -1.5e3");
        assert_eq!(
            toks,
            vec![
                (Tok::Ident, "SELECT"),
                (Tok::Ident, "Id"),
                (Tok::Ident, "FROM"),
                (Tok::Ident, "Account"),
                (Tok::Ident, "WHERE"),
                (Tok::Ident, "Name"),
                (Tok::Ne, "!="),
                (Tok::Str, "'a\\'b'"),
                (Tok::Ident, "AND"),
                (Tok::Ident, "x"),
                (Tok::Le, "<="),
                (Tok::Number, "-1.5e3"),
                (Tok::Eof, ""),
            ]
        );
    }

    #[test]
    fn lexes_dates_and_datetimes() {
        assert_eq!(kinds("2024-01-31")[0], (Tok::Date, "2024-01-31"));
        for dt in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.000+00:00",
            "2024-01-01T00:00:00+0530",
            "2024-01-01T00:00:00.123456-08:00",
        ] {
            assert_eq!(kinds(dt)[0], (Tok::DateTime, dt));
        }
        assert_eq!(kinds("LAST_N_DAYS:30").len(), 4);
    }

    #[test]
    fn bad_input_becomes_bad_tokens() {
        assert_eq!(kinds("'open")[0], (Tok::Bad, "'open"));
        assert_eq!(kinds("#")[0], (Tok::Bad, "#"));
        assert_eq!(kinds("!")[0], (Tok::Bad, "!"));
        assert_eq!(kinds("é")[0], (Tok::Bad, "é"));
        assert_eq!(kinds("<>")[0], (Tok::Ne, "<>"));
    }

    #[test]
    fn offsets_are_bytes() {
        let toks = tokenize("  a\n b");
        assert_eq!((toks[0].pos, toks[1].pos, toks[2].pos), (2, 5, 6));
    }
}
