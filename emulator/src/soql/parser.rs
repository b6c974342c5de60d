//! The SOQL grammar, written with winnow over the token stream from [`lexer`](super::lexer).
//!
//! Errors point at the furthest token any branch failed on (the usual LL heuristic), which is
//! where Salesforce's own parser reports `unexpected token`. Nesting of parentheses, `NOT` and
//! subqueries is capped at [`MAX_DEPTH`] so hostile input cannot exhaust the stack.

use std::cell::Cell;

use winnow::combinator::{opt, preceded, repeat, separated};
use winnow::error::ContextError;
use winnow::prelude::*;
use winnow::stream::{Stateful, Stream, TokenSlice};

use super::aggregate::AggFn;
use super::ast::{
    Cond, FieldsSet, Literal, LiteralValue, Name, Op, Operand, OrderKey, Path, Query, RelativeDate,
    RelativeShape, RelativeUnit, SelectItem,
};
use super::error::{SoqlError, MALFORMED_QUERY, NUMBER_OUTSIDE_VALID_RANGE};
use super::lexer::{tokenize, Tok, Token};
use super::literals;

/// Deepest nesting of parentheses, `NOT` and subqueries accepted.
pub(crate) const MAX_DEPTH: usize = 64;
/// Largest OFFSET Salesforce accepts.
const MAX_OFFSET: u64 = 2000;
/// Largest `n` accepted in `LAST_N_DAYS:n` and friends.
const MAX_RELATIVE_N: u32 = 100_000;

/// Words that cannot start a field path.
const RESERVED: &[&str] = &[
    "AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES", "LAST",
    "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH",
];

/// Parser bookkeeping shared by every grammar function.
#[derive(Debug, Default)]
struct State {
    /// Byte offset of the furthest token a parser failed on.
    furthest: Cell<usize>,
    /// Current nesting depth.
    depth: Cell<usize>,
    /// Where nesting went past [`MAX_DEPTH`], if it did.
    too_deep: Cell<Option<usize>>,
}

/// The token stream the grammar reads.
type Tokens<'t> = Stateful<TokenSlice<'t, Token<'t>>, &'t State>;
/// A grammar function's result.
type PResult<T> = winnow::Result<T>;

/// Parses `soql` into a [`Query`], or reports Salesforce's `MALFORMED_QUERY` error.
pub(crate) fn parse_query(soql: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(soql);
    let state = State::default();
    let mut input = Tokens {
        input: TokenSlice::new(&tokens),
        state: &state,
    };
    let parsed = (query, expect(Tok::Eof)).parse_next(&mut input);
    match parsed {
        Ok((mut q, _)) => {
            q.text = soql.to_owned();
            check_query(&q)?;
            Ok(q)
        }
        Err(_) => Err(syntax_error(soql, &tokens, &state)),
    }
}

/// The error for a failed parse: too deep, a bad character, or an unexpected token.
fn syntax_error(soql: &str, tokens: &[Token<'_>], state: &State) -> SoqlError {
    if let Some(pos) = state.too_deep.get() {
        let reason = format!("Query nesting is deeper than {MAX_DEPTH} levels");
        return SoqlError::at(MALFORMED_QUERY, soql, pos, &reason);
    }
    let pos = state.furthest.get();
    let token = tokens
        .iter()
        .find(|t| t.pos >= pos)
        .unwrap_or(&tokens[tokens.len() - 1]);
    if token.kind == Tok::Bad {
        return bad_token_error(soql, token);
    }
    SoqlError::unexpected(soql, token.pos, token.display())
}

/// Salesforce's lexer messages for a stray character or an unterminated string.
fn bad_token_error(soql: &str, token: &Token<'_>) -> SoqlError {
    let column = soql[..token.pos]
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count())
        + 1;
    let row = soql[..token.pos].matches('\n').count() + 1;
    let reason = if token.text.starts_with('\'') {
        format!("line {row}:{column} mismatched character '<EOF>' expecting '''")
    } else {
        let c = token.text.chars().next().unwrap_or(' ');
        format!("line {row}:{column} no viable alternative at character '{c}'")
    };
    SoqlError::at(MALFORMED_QUERY, soql, token.pos, &reason)
}

/// Checks that need the whole parse: OFFSET range and FIELDS() limits, recursively.
fn check_query(q: &Query) -> Result<(), SoqlError> {
    if q.offset.is_some_and(|o| o > MAX_OFFSET) {
        return Err(SoqlError::plain(
            NUMBER_OUTSIDE_VALID_RANGE,
            format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
        ));
    }
    for item in &q.select {
        if let SelectItem::Fields(set, pos) = item {
            let bounded = q.limit.is_some_and(|l| l <= 200);
            if *set != FieldsSet::Standard && !bounded {
                return Err(SoqlError::at(
                    MALFORMED_QUERY,
                    &q.text,
                    *pos,
                    "The SOQL FIELDS function must have a LIMIT of at most 200",
                ));
            }
        }
    }
    Ok(())
}

// ---- token primitives ---------------------------------------------------------------------

/// The next token, not consumed.
fn peek_tok<'t>(i: &Tokens<'t>) -> Option<&'t Token<'t>> {
    let mut probe = i.input.clone();
    probe.next_token()
}

/// Records a failure at the next token and returns a backtrack error.
fn fail<T>(i: &Tokens<'_>) -> PResult<T> {
    let pos = peek_tok(i).map_or(usize::MAX, |t| t.pos);
    if pos > i.state.furthest.get() {
        i.state.furthest.set(pos);
    }
    Err(ContextError::new())
}

/// Consumes the next token if `accept` says yes.
fn token_if<'t>(i: &mut Tokens<'t>, accept: impl Fn(&Token<'t>) -> bool) -> PResult<&'t Token<'t>> {
    match peek_tok(i) {
        Some(t) if accept(t) => {
            i.input.next_token();
            Ok(t)
        }
        _ => fail(i),
    }
}

/// A token of kind `kind`.
fn expect<'t>(kind: Tok) -> impl FnMut(&mut Tokens<'t>) -> PResult<&'t Token<'t>> {
    move |i| token_if(i, |t| t.kind == kind)
}

/// The keyword `w`, any case.
fn word<'t>(w: &'static str) -> impl FnMut(&mut Tokens<'t>) -> PResult<&'t Token<'t>> {
    move |i| token_if(i, |t| t.is_word(w))
}

/// Whether the next token is the keyword `w`.
fn at_word(i: &Tokens<'_>, w: &str) -> bool {
    peek_tok(i).is_some_and(|t| t.is_word(w))
}

/// An identifier as a [`Name`].
fn name(i: &mut Tokens<'_>) -> PResult<Name> {
    let t = token_if(i, |t| t.kind == Tok::Ident)?;
    Ok(Name {
        text: t.text.to_owned(),
        pos: t.pos,
    })
}

/// An identifier that is not a reserved word.
fn plain_name(i: &mut Tokens<'_>) -> PResult<Name> {
    let t = token_if(i, |t| {
        t.kind == Tok::Ident && !RESERVED.iter().any(|r| t.text.eq_ignore_ascii_case(r))
    })?;
    Ok(Name {
        text: t.text.to_owned(),
        pos: t.pos,
    })
}

/// A non-negative integer and its offset.
fn integer(i: &mut Tokens<'_>) -> PResult<(u64, usize)> {
    let t = token_if(i, |t| {
        t.kind == Tok::Number && t.text.parse::<u64>().is_ok()
    })?;
    Ok((t.text.parse().unwrap_or(0), t.pos))
}

/// Runs `inner` one nesting level deeper, failing past [`MAX_DEPTH`].
fn nested<'t, T>(
    i: &mut Tokens<'t>,
    inner: impl FnOnce(&mut Tokens<'t>) -> PResult<T>,
) -> PResult<T> {
    let depth = i.state.depth.get() + 1;
    if depth > MAX_DEPTH {
        if i.state.too_deep.get().is_none() {
            i.state.too_deep.set(Some(peek_tok(i).map_or(0, |t| t.pos)));
        }
        return Err(ContextError::new());
    }
    i.state.depth.set(depth);
    let out = inner(i);
    i.state.depth.set(depth - 1);
    out
}

// ---- grammar ------------------------------------------------------------------------------

/// `SELECT … FROM … [WHERE …] [ORDER BY …] [LIMIT n] [OFFSET n] [FOR …|ALL ROWS]`.
fn query(i: &mut Tokens<'_>) -> PResult<Query> {
    word("SELECT").parse_next(i)?;
    let select = separated(1.., select_item, expect(Tok::Comma)).parse_next(i)?;
    word("FROM").parse_next(i)?;
    let from = plain_name(i)?;
    let filter = opt(preceded(word("WHERE"), cond)).parse_next(i)?;
    let group_by = opt(preceded(
        (word("GROUP"), word("BY")),
        separated(1.., path, expect(Tok::Comma)),
    ))
    .parse_next(i)?
    .unwrap_or_default();
    let order_by = opt(preceded(
        (word("ORDER"), word("BY")),
        separated(1.., order_key, expect(Tok::Comma)),
    ))
    .parse_next(i)?
    .unwrap_or_default();
    let limit = opt(preceded(word("LIMIT"), integer)).parse_next(i)?;
    let offset = opt(preceded(word("OFFSET"), integer)).parse_next(i)?;
    repeat::<_, _, (), _, _>(0..=2, trailer).parse_next(i)?;
    Ok(Query {
        text: String::new(),
        select,
        from,
        filter,
        group_by,
        order_by,
        limit: limit.map(|(n, _)| n),
        offset: offset.map(|(n, _)| n),
        offset_pos: offset.map_or(0, |(_, p)| p),
    })
}

/// `FOR VIEW`, `FOR REFERENCE`, `FOR UPDATE` or `ALL ROWS`: accepted and ignored.
fn trailer(i: &mut Tokens<'_>) -> PResult<()> {
    if at_word(i, "ALL") {
        return (word("ALL"), word("ROWS")).void().parse_next(i);
    }
    word("FOR").parse_next(i)?;
    token_if(i, |t| {
        t.is_word("VIEW") || t.is_word("REFERENCE") || t.is_word("UPDATE")
    })
    .map(|_| ())
}

/// One select-list entry.
fn select_item(i: &mut Tokens<'_>) -> PResult<SelectItem> {
    let start = i.checkpoint();
    if at_word(i, "COUNT") {
        i.input.next_token();
        if expect(Tok::LParen).parse_next(i).is_ok() {
            return count_rest(i);
        }
        i.reset(&start);
    }
    if expect(Tok::LParen).parse_next(i).is_ok() {
        let q = nested(i, query)?;
        expect(Tok::RParen).parse_next(i)?;
        return Ok(SelectItem::Subquery(Box::new(q)));
    }
    if let Some(func) = peek_tok(i)
        .filter(|t| t.kind == Tok::Ident && !t.is_word("COUNT"))
        .and_then(|t| AggFn::from_name(t.text))
    {
        i.input.next_token();
        if expect(Tok::LParen).parse_next(i).is_ok() {
            let p = path(i)?;
            expect(Tok::RParen).parse_next(i)?;
            let alias = opt(plain_name).parse_next(i)?;
            return Ok(SelectItem::Aggregate(func, p, alias));
        }
        i.reset(&start);
    }
    if at_word(i, "FIELDS") {
        let pos = peek_tok(i).map_or(0, |t| t.pos);
        i.input.next_token();
        if expect(Tok::LParen).parse_next(i).is_ok() {
            return fields_rest(i, pos);
        }
        i.reset(&start);
    }
    path.map(SelectItem::Field).parse_next(i)
}

/// The rest of `COUNT(` : `)` or `path) [alias]`.
fn count_rest(i: &mut Tokens<'_>) -> PResult<SelectItem> {
    if expect(Tok::RParen).parse_next(i).is_ok() {
        return Ok(SelectItem::Count);
    }
    let p = path(i)?;
    expect(Tok::RParen).parse_next(i)?;
    let alias = opt(plain_name).parse_next(i)?;
    Ok(SelectItem::CountField(p, alias))
}

/// The rest of `FIELDS(` : `ALL|STANDARD|CUSTOM)`.
fn fields_rest(i: &mut Tokens<'_>, pos: usize) -> PResult<SelectItem> {
    let t = token_if(i, |t| {
        t.is_word("ALL") || t.is_word("STANDARD") || t.is_word("CUSTOM")
    })?;
    expect(Tok::RParen).parse_next(i)?;
    let set = if t.is_word("ALL") {
        FieldsSet::All
    } else if t.is_word("STANDARD") {
        FieldsSet::Standard
    } else {
        FieldsSet::Custom
    };
    Ok(SelectItem::Fields(set, pos))
}

/// `name(.name)*`.
fn path(i: &mut Tokens<'_>) -> PResult<Path> {
    let first = plain_name(i)?;
    let rest: Vec<Name> = repeat(0.., preceded(expect(Tok::Dot), name)).parse_next(i)?;
    let mut parts = Vec::with_capacity(rest.len() + 1);
    parts.push(first);
    parts.extend(rest);
    Ok(Path { parts })
}

/// `path [ASC|DESC] [NULLS FIRST|LAST]`.
fn order_key(i: &mut Tokens<'_>) -> PResult<OrderKey> {
    let path = path(i)?;
    let dir = opt(direction).parse_next(i)?;
    let descending = dir.is_some_and(|t| t.is_word("DESC"));
    let nulls = opt(preceded(word("NULLS"), first_or_last)).parse_next(i)?;
    let nulls_first = nulls.is_none_or(|t| t.is_word("FIRST"));
    Ok(OrderKey {
        path,
        descending,
        nulls_first,
    })
}

/// `ASC` or `DESC`.
fn direction<'t>(i: &mut Tokens<'t>) -> PResult<&'t Token<'t>> {
    token_if(i, |t| t.is_word("ASC") || t.is_word("DESC"))
}

/// `FIRST` or `LAST`.
fn first_or_last<'t>(i: &mut Tokens<'t>) -> PResult<&'t Token<'t>> {
    token_if(i, |t| t.is_word("FIRST") || t.is_word("LAST"))
}

/// A condition: one unary term, or terms joined all by AND or all by OR.
///
/// Like Salesforce, mixing AND and OR without parentheses is a syntax error.
fn cond(i: &mut Tokens<'_>) -> PResult<Cond> {
    let first = unary(i)?;
    let joiner = match peek_tok(i) {
        Some(t) if t.is_word("AND") => "AND",
        Some(t) if t.is_word("OR") => "OR",
        _ => return Ok(first),
    };
    let rest: Vec<Cond> = repeat(1.., preceded(word(joiner), unary)).parse_next(i)?;
    let mut all = Vec::with_capacity(rest.len() + 1);
    all.push(first);
    all.extend(rest);
    Ok(if joiner == "AND" {
        Cond::And(all)
    } else {
        Cond::Or(all)
    })
}

/// `NOT unary`, `( cond )` or a comparison.
fn unary(i: &mut Tokens<'_>) -> PResult<Cond> {
    if at_word(i, "NOT") {
        i.input.next_token();
        return nested(i, |i| unary(i).map(|c| Cond::Not(Box::new(c))));
    }
    if peek_tok(i).is_some_and(|t| t.kind == Tok::LParen) {
        i.input.next_token();
        let inner = nested(i, cond)?;
        expect(Tok::RParen).parse_next(i)?;
        return Ok(inner);
    }
    comparison(i)
}

/// `path op operand`.
fn comparison(i: &mut Tokens<'_>) -> PResult<Cond> {
    let p = path(i)?;
    let Some(t) = peek_tok(i) else {
        return fail(i);
    };
    let simple = match t.kind {
        Tok::Eq => Some(Op::Eq),
        Tok::Ne => Some(Op::Ne),
        Tok::Lt => Some(Op::Lt),
        Tok::Le => Some(Op::Le),
        Tok::Gt => Some(Op::Gt),
        Tok::Ge => Some(Op::Ge),
        _ if t.is_word("LIKE") => Some(Op::Like),
        _ => None,
    };
    if let Some(op) = simple {
        i.input.next_token();
        let v = value(i)?;
        return Ok(Cond::Compare(p, op, Operand::Value(v)));
    }
    let op = if t.is_word("IN") {
        Op::In
    } else if t.is_word("INCLUDES") {
        Op::Includes
    } else if t.is_word("EXCLUDES") {
        Op::Excludes
    } else if t.is_word("NOT") {
        i.input.next_token();
        if !at_word(i, "IN") {
            return fail(i);
        }
        Op::NotIn
    } else {
        return fail(i);
    };
    i.input.next_token();
    let allow_subquery = matches!(op, Op::In | Op::NotIn);
    let operand = list_operand(i, allow_subquery)?;
    Ok(Cond::Compare(p, op, operand))
}

/// `( value, … )` or, when allowed, `( SELECT … )`.
fn list_operand(i: &mut Tokens<'_>, allow_subquery: bool) -> PResult<Operand> {
    expect(Tok::LParen).parse_next(i)?;
    let operand = if allow_subquery && at_word(i, "SELECT") {
        Operand::Subquery(Box::new(nested(i, query)?))
    } else {
        Operand::List(separated(1.., value, expect(Tok::Comma)).parse_next(i)?)
    };
    expect(Tok::RParen).parse_next(i)?;
    Ok(operand)
}

/// A literal value.
fn value(i: &mut Tokens<'_>) -> PResult<Literal> {
    let Some(t) = peek_tok(i) else {
        return fail(i);
    };
    let v = match t.kind {
        Tok::Str => {
            let raw = &t.text[1..t.text.len() - 1];
            if literals::unescape(raw).is_err() {
                return fail(i);
            }
            LiteralValue::Str(raw.to_owned())
        }
        Tok::Number => LiteralValue::Number(t.text.to_owned()),
        Tok::Date => match literals::parse_date(t.text) {
            Some(d) => LiteralValue::Date(d),
            None => return fail(i),
        },
        Tok::DateTime => match literals::parse_datetime(t.text) {
            Some(d) => LiteralValue::DateTime(d),
            None => return fail(i),
        },
        Tok::Ident => return word_value(i),
        _ => return fail(i),
    };
    i.input.next_token();
    Ok(Literal {
        value: v,
        pos: t.pos,
    })
}

/// `NULL`, `TRUE`, `FALSE` or a date literal such as `LAST_N_DAYS:30`.
fn word_value(i: &mut Tokens<'_>) -> PResult<Literal> {
    let t = token_if(i, |t| t.kind == Tok::Ident)?;
    let upper = t.text.to_ascii_uppercase();
    let value = match upper.as_str() {
        "NULL" => LiteralValue::Null,
        "TRUE" => LiteralValue::Bool(true),
        "FALSE" => LiteralValue::Bool(false),
        _ => LiteralValue::Relative(relative_date(i, &upper, t)?),
    };
    Ok(Literal { value, pos: t.pos })
}

/// The date literal named `upper` (already consumed), reading `:n` when it takes one.
fn relative_date(i: &mut Tokens<'_>, upper: &str, t: &Token<'_>) -> PResult<RelativeDate> {
    if let Some((unit, shape, n)) = fixed_relative(upper) {
        return Ok(RelativeDate { unit, shape, n });
    }
    let Some((unit, shape)) = counted_relative(upper) else {
        i.state.furthest.set(i.state.furthest.get().max(t.pos));
        return Err(ContextError::new());
    };
    expect(Tok::Colon).parse_next(i)?;
    let n = token_if(i, |t| {
        t.kind == Tok::Number && t.text.parse::<u32>().is_ok_and(|n| n <= MAX_RELATIVE_N)
    })?;
    let n = n.text.parse().unwrap_or(0);
    Ok(RelativeDate { unit, shape, n })
}

/// Date literals without `:n`.
fn fixed_relative(upper: &str) -> Option<(RelativeUnit, RelativeShape, u32)> {
    use RelativeShape::{LastDaysWithToday, Next, This};
    use RelativeUnit::{Day, Month, Quarter, Week, Year};
    let upper = upper.replace("_FISCAL", "");
    Some(match upper.as_str() {
        "YESTERDAY" => (Day, RelativeShape::Last, 1),
        "TODAY" => (Day, This, 1),
        "TOMORROW" => (Day, Next, 1),
        "LAST_90_DAYS" => (Day, LastDaysWithToday, 90),
        "NEXT_90_DAYS" => (Day, Next, 90),
        _ => {
            let (shape, rest) = if let Some(r) = upper.strip_prefix("THIS_") {
                (This, r)
            } else if let Some(r) = upper.strip_prefix("LAST_") {
                (RelativeShape::Last, r)
            } else {
                (Next, upper.strip_prefix("NEXT_")?)
            };
            let unit = match rest {
                "WEEK" => Week,
                "MONTH" => Month,
                "QUARTER" => Quarter,
                "YEAR" => Year,
                _ => return None,
            };
            (unit, shape, 1)
        }
    })
}

/// Date literals that take `:n`.
fn counted_relative(upper: &str) -> Option<(RelativeUnit, RelativeShape)> {
    let upper = upper.replace("_FISCAL", "");
    let (shape, unit) = if let Some(r) = upper.strip_prefix("LAST_N_") {
        (RelativeShape::Last, r)
    } else if let Some(r) = upper.strip_prefix("NEXT_N_") {
        (RelativeShape::Next, r)
    } else {
        let r = upper.strip_prefix("N_")?.strip_suffix("_AGO")?;
        (RelativeShape::Ago, r)
    };
    let unit = match unit {
        "DAYS" => RelativeUnit::Day,
        "WEEKS" => RelativeUnit::Week,
        "MONTHS" => RelativeUnit::Month,
        "QUARTERS" => RelativeUnit::Quarter,
        "YEARS" => RelativeUnit::Year,
        _ => return None,
    };
    let shape = match (shape, unit) {
        (RelativeShape::Last, RelativeUnit::Day) => RelativeShape::LastDaysWithToday,
        (s, _) => s,
    };
    Some((unit, shape))
}
