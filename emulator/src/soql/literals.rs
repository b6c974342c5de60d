//! Literal handling: string escapes, LIKE patterns, date and datetime text, and the ranges that
//! date literals such as `LAST_N_DAYS:30` stand for.
//!
//! Date literal ranges are computed in UTC (the emulator's user locale is en_US in UTC, so weeks
//! start on Sunday and the fiscal year is the calendar year).

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};

use super::ast::{RelativeDate, RelativeShape, RelativeUnit};

/// Decodes the backslash escapes of a quoted string body.
///
/// Accepts `\n \r \t \b \f \" \' \\ \_ \%` (letters in either case); any other escape is an
/// error carrying the offending sequence, as Salesforce rejects it.
pub(crate) fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(|| "\\".to_owned())?;
        out.push(escaped(e).ok_or_else(|| format!("\\{e}"))?);
    }
    Ok(out)
}

/// The character an escape `\e` stands for.
fn escaped(e: char) -> Option<char> {
    Some(match e {
        'n' | 'N' => '\n',
        'r' | 'R' => '\r',
        't' | 'T' => '\t',
        'b' | 'B' => '\u{8}',
        'f' | 'F' => '\u{c}',
        '"' | '\'' | '\\' | '_' | '%' => e,
        _ => return None,
    })
}

/// One element of a compiled LIKE pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LikeTok {
    /// A literal character (lowercased).
    Lit(char),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters.
    Any,
}

/// Compiles a raw (still escaped) LIKE string; `\%` and `\_` are literal.
pub(crate) fn like_pattern(raw: &str) -> Vec<LikeTok> {
    let mut out = Vec::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                if out.last() != Some(&LikeTok::Any) {
                    out.push(LikeTok::Any);
                }
            }
            '_' => out.push(LikeTok::One),
            '\\' => {
                let e = chars.next().and_then(escaped).unwrap_or('\\');
                out.extend(e.to_lowercase().map(LikeTok::Lit));
            }
            _ => out.extend(c.to_lowercase().map(LikeTok::Lit)),
        }
    }
    out
}

/// Whether `value` matches `pattern`, ignoring case. O(len(value) × len(pattern)) at worst;
/// ASCII values are matched in place, others are lowercased into a buffer first.
pub(crate) fn like_matches(pattern: &[LikeTok], value: &str) -> bool {
    if value.is_ascii() {
        let bytes = value.as_bytes();
        return wildcard(pattern, bytes.len(), |i| {
            char::from(bytes[i].to_ascii_lowercase())
        });
    }
    let text: Vec<char> = value.chars().flat_map(char::to_lowercase).collect();
    wildcard(pattern, text.len(), |i| text[i])
}

/// Greedy wildcard matching with single-star backtracking over `len` characters read by `at`.
fn wildcard(pattern: &[LikeTok], len: usize, at: impl Fn(usize) -> char) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < len {
        match pattern.get(p) {
            Some(LikeTok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(LikeTok::One) => {
                p += 1;
                t += 1;
            }
            Some(LikeTok::Lit(c)) if *c == at(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|tok| *tok == LikeTok::Any)
}

/// Parses `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm|±hhmm)` into UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let (body, offset) = split_offset(s)?;
    let naive = chrono::NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let utc = naive.checked_sub_signed(chrono::TimeDelta::seconds(offset))?;
    Some(utc.and_utc())
}

/// Splits a datetime into its local part and its offset in seconds east of UTC.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(body) = s.strip_suffix(['Z', 'z']) {
        return Some((body, 0));
    }
    let cut = s.rfind(['+', '-'])?;
    let (body, zone) = s.split_at(cut);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) || !body.contains('T') {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some((body, sign * (hours * 3600 + minutes * 60)))
}

/// Formats a datetime as Salesforce returns it: `2024-01-01T00:00:00.000+0000`.
pub(crate) fn format_datetime(dt: DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// The half-open day range `[start, end)` a date literal stands for, relative to `today`.
pub(crate) fn relative_range(
    rel: RelativeDate,
    today: NaiveDate,
) -> Option<(NaiveDate, NaiveDate)> {
    let n = i64::from(rel.n);
    match rel.unit {
        RelativeUnit::Day => span(rel.shape, n, 0, |k| add_days(today, k)),
        RelativeUnit::Week => {
            let sunday = add_days(today, -i64::from(today.weekday().num_days_from_sunday()))?;
            span(rel.shape, n, 0, |k| add_days(sunday, 7 * k))
        }
        RelativeUnit::Month => {
            let month = i64::from(today.year()) * 12 + i64::from(today.month0());
            span(rel.shape, n, 0, |k| month_start(month + k))
        }
        RelativeUnit::Quarter => {
            let quarter = i64::from(today.year()) * 4 + i64::from(today.month0() / 3);
            span(rel.shape, n, 0, |k| month_start((quarter + k) * 3))
        }
        RelativeUnit::Year => {
            let year = i64::from(today.year());
            span(rel.shape, n, 0, |k| month_start((year + k) * 12))
        }
    }
}

/// Places a range of units given `start_of(k)`, the first day of the unit `k` units from now.
fn span(
    shape: RelativeShape,
    n: i64,
    now: i64,
    start_of: impl Fn(i64) -> Option<NaiveDate>,
) -> Option<(NaiveDate, NaiveDate)> {
    let (from, to) = match shape {
        RelativeShape::This => (now, now + 1),
        RelativeShape::Last => (now - n, now),
        RelativeShape::Next => (now + 1, now + 1 + n),
        RelativeShape::Ago => (now - n, now - n + 1),
        RelativeShape::LastDaysWithToday => (now - n, now + 1),
    };
    Some((start_of(from)?, start_of(to)?))
}

/// `date` moved by `days` (either direction).
fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    let step = Days::new(days.unsigned_abs());
    if days >= 0 {
        date.checked_add_days(step)
    } else {
        date.checked_sub_days(step)
    }
}

/// The first day of the month with index `year * 12 + month0`.
fn month_start(index: i64) -> Option<NaiveDate> {
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    NaiveDate::from_ymd_opt(year, month, 1)
}

/// Midnight UTC at the start of `date`.
pub(crate) fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn range(unit: RelativeUnit, shape: RelativeShape, n: u32, today: &str) -> (String, String) {
        let (a, b) = relative_range(RelativeDate { unit, shape, n }, d(today)).unwrap();
        (a.to_string(), b.to_string())
    }

    #[test]
    fn unescapes_known_sequences_only() {
        assert_eq!(unescape(r"a\'b\\c\n\%").unwrap(), "a'b\\c\n%");
        assert_eq!(unescape(r"bad\q").unwrap_err(), r"\q");
        assert!(unescape("trail\\").is_err());
    }

    #[test]
    fn like_handles_wildcards_escapes_and_case() {
        let m = |p: &str, v: &str| like_matches(&like_pattern(p), v);
        assert!(m("Ac%", "ACME"));
        assert!(m("%me", "acme"));
        assert!(m("a_me", "Acme"));
        assert!(!m("a_me", "Ame"));
        assert!(m("%", ""));
        assert!(!m("_", ""));
        assert!(m(r"100\%", "100%"));
        assert!(!m(r"100\%", "1000"));
        assert!(m(r"a\_b", "a_b"));
        assert!(!m(r"a\_b", "axb"));
        assert!(m("%a%b%c%", "xxaxxbxxcxx"));
        assert!(!m("%a%b%c%", "xxaxxcxxbxx"));
        assert!(m("ÄB%", "äbc"));
    }

    #[test]
    fn parses_datetime_forms() {
        let want = parse_datetime("2024-01-01T00:00:00Z").unwrap();
        for s in [
            "2024-01-01T00:00:00.000+0000",
            "2024-01-01T00:00:00.000+00:00",
            "2024-01-01T05:30:00+0530",
            "2023-12-31T16:00:00-08:00",
        ] {
            assert_eq!(parse_datetime(s), Some(want), "{s}");
        }
        assert_eq!(format_datetime(want), "2024-01-01T00:00:00.000+0000");
        assert_eq!(parse_datetime("2024-01-01"), None);
        assert_eq!(parse_datetime("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_datetime("2024-01-01T00:00:00+a€"), None);
        assert_eq!(parse_datetime("+"), None);
        assert_eq!(parse_datetime("é"), None);
    }

    #[test]
    fn day_ranges() {
        use RelativeShape::*;
        use RelativeUnit::Day;
        let t = "2024-03-15";
        assert_eq!(
            range(Day, This, 1, t),
            ("2024-03-15".into(), "2024-03-16".into())
        );
        assert_eq!(
            range(Day, Last, 1, t),
            ("2024-03-14".into(), "2024-03-15".into())
        );
        assert_eq!(
            range(Day, Next, 1, t),
            ("2024-03-16".into(), "2024-03-17".into())
        );
        assert_eq!(
            range(Day, LastDaysWithToday, 1, t),
            ("2024-03-14".into(), "2024-03-16".into())
        );
        assert_eq!(
            range(Day, Next, 90, t),
            ("2024-03-16".into(), "2024-06-14".into())
        );
        assert_eq!(
            range(Day, Ago, 3, t),
            ("2024-03-12".into(), "2024-03-13".into())
        );
    }

    #[test]
    fn calendar_ranges() {
        use RelativeShape::*;
        use RelativeUnit::*;
        // 2024-03-15 is a Friday; its week starts Sunday 2024-03-10.
        let t = "2024-03-15";
        assert_eq!(
            range(Week, This, 1, t),
            ("2024-03-10".into(), "2024-03-17".into())
        );
        assert_eq!(
            range(Week, Last, 2, t),
            ("2024-02-25".into(), "2024-03-10".into())
        );
        assert_eq!(
            range(Week, Next, 1, t),
            ("2024-03-17".into(), "2024-03-24".into())
        );
        assert_eq!(
            range(Month, This, 1, t),
            ("2024-03-01".into(), "2024-04-01".into())
        );
        assert_eq!(
            range(Month, Last, 3, t),
            ("2023-12-01".into(), "2024-03-01".into())
        );
        assert_eq!(
            range(Month, Next, 1, "2024-12-05"),
            ("2025-01-01".into(), "2025-02-01".into())
        );
        assert_eq!(
            range(Quarter, This, 1, t),
            ("2024-01-01".into(), "2024-04-01".into())
        );
        assert_eq!(
            range(Quarter, Last, 1, t),
            ("2023-10-01".into(), "2024-01-01".into())
        );
        assert_eq!(
            range(Year, This, 1, t),
            ("2024-01-01".into(), "2025-01-01".into())
        );
        assert_eq!(
            range(Year, Last, 2, t),
            ("2022-01-01".into(), "2024-01-01".into())
        );
        assert_eq!(
            range(Year, Ago, 1, t),
            ("2023-01-01".into(), "2024-01-01".into())
        );
    }
}
