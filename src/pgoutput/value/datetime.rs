//! Dates, times, timestamps and intervals in Postgres' ISO / `postgres` output styles.
//!
//! Forms read: `2024-01-15`, `0044-03-15 BC`, `infinity`; `04:05:06.789`;
//! `04:05:06+05:30`; `2024-01-15 04:05:06.789`; `2024-01-15 04:05:06.789-08` (offsets
//! `+HH`, `+HH:MM`, `+HH:MM:SS`); `1 year 2 mons -3 days +04:05:06.789`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::{Interval, PgDate, PgTimestamp};

type R<T> = Result<T, &'static str>;

/// Strip a trailing ` BC`, reporting whether it was there.
fn split_era(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

fn digits<T: std::str::FromStr>(s: &str, what: &'static str) -> R<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(what);
    }
    s.parse().map_err(|_| what)
}

/// `YYYY-MM-DD` (year may be longer than 4 digits), with `bc` meaning 1 BC = year 0.
fn ymd(s: &str, bc: bool) -> R<NaiveDate> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d)) => (y, m, d),
        _ => return Err("expected YYYY-MM-DD"),
    };
    let year: i32 = digits(y, "bad year")?;
    let year = if bc { 1 - year } else { year };
    NaiveDate::from_ymd_opt(year, digits(m, "bad month")?, digits(d, "bad day")?)
        .ok_or("date out of range")
}

pub(super) fn parse_date(text: &str) -> R<PgDate> {
    match text {
        "infinity" => return Ok(PgDate::Infinity),
        "-infinity" => return Ok(PgDate::NegInfinity),
        _ => {}
    }
    let (s, bc) = split_era(text);
    Ok(PgDate::Value(ymd(s, bc)?))
}

/// `HH:MM:SS[.frac]`. `Ok(None)` for `24:00:00`, which chrono cannot hold.
pub(super) fn parse_time(s: &str) -> R<Option<NaiveTime>> {
    let (hms, frac) = match s.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (s, None),
    };
    let mut parts = hms.splitn(3, ':');
    let (h, m, sec) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(m), Some(sec)) => (h, m, sec),
        _ => return Err("expected HH:MM:SS"),
    };
    let (h, m, sec): (u32, u32, u32) = (
        digits(h, "bad hour")?,
        digits(m, "bad minute")?,
        digits(sec, "bad second")?,
    );
    let nanos = match frac {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 9 => return Err("bad fractional seconds"),
        Some(f) => digits::<u32>(f, "bad fractional seconds")? * 10u32.pow(9 - f.len() as u32),
    };
    if h == 24 && m == 0 && sec == 0 && nanos == 0 {
        return Ok(None);
    }
    if sec > 59 {
        return Err("second out of range");
    }
    NaiveTime::from_hms_nano_opt(h, m, sec, nanos)
        .map(Some)
        .ok_or("time out of range")
}

/// `+HH`, `+HH:MM` or `+HH:MM:SS` → seconds east of UTC.
fn parse_offset(s: &str) -> R<i32> {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err("expected a UTC offset"),
    };
    let mut secs = 0i32;
    let mut n = 0;
    for (i, part) in rest.split(':').enumerate() {
        if i > 2 || part.len() != 2 {
            return Err("bad UTC offset");
        }
        let v: i32 = digits(part, "bad UTC offset")?;
        if i > 0 && v > 59 {
            return Err("bad UTC offset");
        }
        secs += v * [3600, 60, 1][i];
        n += 1;
    }
    if n == 0 || secs > 16 * 3600 {
        return Err("bad UTC offset");
    }
    Ok(sign * secs)
}

/// Split `time` from a trailing `+/-offset` (the time part itself has no sign).
fn split_offset(s: &str) -> Option<(&str, &str)> {
    let at = s.find(['+', '-'])?;
    Some((&s[..at], &s[at..]))
}

pub(super) fn parse_timetz(text: &str) -> R<(Option<NaiveTime>, i32)> {
    let (time, offset) = split_offset(text).ok_or("expected a UTC offset")?;
    Ok((parse_time(time)?, parse_offset(offset)?))
}

fn infinities<T>(text: &str) -> Option<PgTimestamp<T>> {
    match text {
        "infinity" => Some(PgTimestamp::Infinity),
        "-infinity" => Some(PgTimestamp::NegInfinity),
        _ => None,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.frac]` → naive date-time and the text after the time.
fn date_time(s: &str, bc: bool) -> R<(NaiveDateTime, Option<i32>)> {
    let (date, rest) = s.split_once(' ').ok_or("expected a date and a time")?;
    let date = ymd(date, bc)?;
    let (time, offset) = match split_offset(rest) {
        Some((t, o)) => (t, Some(parse_offset(o)?)),
        None => (rest, None),
    };
    // 24:00:00 is not a valid time of day inside a timestamp.
    let time = parse_time(time)?.ok_or("hour out of range")?;
    Ok((date.and_time(time), offset))
}

pub(super) fn parse_timestamp(text: &str) -> R<PgTimestamp<NaiveDateTime>> {
    if let Some(inf) = infinities(text) {
        return Ok(inf);
    }
    let (s, bc) = split_era(text);
    match date_time(s, bc)? {
        (dt, None) => Ok(PgTimestamp::Value(dt)),
        (_, Some(_)) => Err("timestamp without time zone has a UTC offset"),
    }
}

pub(super) fn parse_timestamptz(text: &str) -> R<PgTimestamp<DateTime<Utc>>> {
    if let Some(v) = common_timestamptz(text) {
        return Ok(PgTimestamp::Value(v));
    }
    if let Some(inf) = infinities(text) {
        return Ok(inf);
    }
    let (s, bc) = split_era(text);
    match date_time(s, bc)? {
        (dt, Some(offset)) => dt
            .checked_sub_signed(chrono::TimeDelta::seconds(i64::from(offset)))
            .map(|utc| PgTimestamp::Value(utc.and_utc()))
            .ok_or("timestamp out of range"),
        (_, None) => Err("timestamp with time zone has no UTC offset"),
    }
}

/// The form nearly every value has (`DateStyle = ISO`, a four-digit AD year), read by byte
/// position: `YYYY-MM-DD HH:MM:SS[.f{1,9}]±HH[:MM[:SS]]`. `None` for anything else, valid
/// or not (the general parser decides); `Some` only for a value the general parser reads
/// the same way.
fn common_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let shaped = b.len() >= 22
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if !shaped {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut at = 19;
    let mut nanos = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(at + 1, at + 1 + digits)? * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset = parse_offset(text.get(at..)?).ok()?;
    if hour > 23 || second > 59 {
        return None;
    }
    let local = NaiveDate::from_ymd_opt(year as i32, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    local
        .checked_sub_signed(chrono::TimeDelta::seconds(i64::from(offset)))
        .map(|utc| utc.and_utc())
}

/// `IntervalStyle = postgres`: `[N year[s]] [N mon[s]] [N day[s]] [[+-]H:MM:SS[.frac]]`.
pub(super) fn parse_interval(text: &str) -> R<Interval> {
    match text {
        "infinity" => return Ok(Interval::INFINITY),
        "-infinity" => return Ok(Interval::NEG_INFINITY),
        _ => {}
    }
    let mut months: i64 = 0;
    let mut days: i64 = 0;
    let mut micros: i64 = 0;
    let mut tokens = text.split_whitespace().peekable();
    if tokens.peek().is_none() {
        return Err("empty interval");
    }
    let mut seen_time = false;
    while let Some(tok) = tokens.next() {
        if seen_time {
            return Err("unexpected text after the time part");
        }
        if tok.contains(':') {
            micros = interval_time(tok)?;
            seen_time = true;
            continue;
        }
        let n: i64 = signed(tok)?;
        let unit = tokens.next().ok_or("number without a unit")?;
        let (slot, factor) = match unit {
            "year" | "years" => (&mut months, 12),
            "mon" | "mons" => (&mut months, 1),
            "day" | "days" => (&mut days, 1),
            _ => return Err("unknown interval unit"),
        };
        *slot = n
            .checked_mul(factor)
            .and_then(|v| slot.checked_add(v))
            .ok_or("interval out of range")?;
    }
    Ok(Interval {
        months: i32::try_from(months).map_err(|_| "interval months out of range")?,
        days: i32::try_from(days).map_err(|_| "interval days out of range")?,
        micros,
    })
}

fn signed(tok: &str) -> R<i64> {
    let (neg, body) = match tok.as_bytes().first() {
        Some(b'-') => (true, &tok[1..]),
        Some(b'+') => (false, &tok[1..]),
        _ => (false, tok),
    };
    let v: i64 = digits(body, "bad interval number")?;
    Ok(if neg { -v } else { v })
}

/// `[+-]H:MM:SS[.frac]` (hours unbounded) → microseconds.
fn interval_time(tok: &str) -> R<i64> {
    let (neg, body) = match tok.as_bytes().first() {
        Some(b'-') => (true, &tok[1..]),
        Some(b'+') => (false, &tok[1..]),
        _ => (false, tok),
    };
    let (hms, frac) = match body.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (body, None),
    };
    let mut parts = hms.splitn(3, ':');
    let (h, m, s) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(m), Some(s)) => (h, m, s),
        _ => return Err("expected H:MM:SS in interval"),
    };
    let h: i64 = digits(h, "bad interval hours")?;
    let m: i64 = digits(m, "bad interval minutes")?;
    let s: i64 = digits(s, "bad interval seconds")?;
    let frac_micros = match frac {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 6 => return Err("bad interval fraction"),
        Some(f) => digits::<i64>(f, "bad interval fraction")? * 10i64.pow(6 - f.len() as u32),
    };
    if m > 59 || s > 59 {
        return Err("interval minutes or seconds out of range");
    }
    let total = h
        .checked_mul(3_600_000_000)
        .and_then(|v| v.checked_add(m * 60_000_000 + s * 1_000_000 + frac_micros))
        .ok_or("interval out of range")?;
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_timestamptz_form_reads_as_the_general_parser_does() {
        let samples = [
            "2024-01-15 04:05:06+00",
            "2024-01-15 04:05:06.789-08",
            "2024-01-15 04:05:06.123456+05:30",
            "2024-02-29 23:59:59.999999999+14",
            "1999-12-31 00:00:00-00:30:15",
            "2024-01-15 04:05:06.+00",
            "2024-01-15 04:05:06.1234567890+00",
            "2023-02-29 04:05:06+00",
            "2024-01-15 24:00:00+00",
            "2024-01-15 04:60:00+00",
            "2024-01-15 04:05:60+00",
            "2024-01-15 04:05:06+25",
            "2024-01-15 04:05:06",
            "2024-01-15 04:05:06+00 BC",
            "12024-01-15 04:05:06+00",
            "0044-03-15 04:05:06+00 BC",
            "2024-01-15T04:05:06+00",
            "infinity",
        ];
        for text in samples {
            let mut general = None;
            let (s, bc) = split_era(text);
            if let Ok((dt, Some(offset))) = date_time(s, bc) {
                general = dt
                    .checked_sub_signed(chrono::TimeDelta::seconds(i64::from(offset)))
                    .map(|u| u.and_utc());
            }
            if let Some(fast) = common_timestamptz(text) {
                assert_eq!(Some(fast), general, "{text}");
            }
            let parsed = parse_timestamptz(text).ok().and_then(|t| match t {
                PgTimestamp::Value(v) => Some(v),
                _ => None,
            });
            assert_eq!(parsed, general, "{text}");
        }
        assert!(common_timestamptz("2024-01-15 04:05:06.789-08").is_some());
        assert!(common_timestamptz("2024-01-15 04:05:06+00 BC").is_none());
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+00"), Ok(0));
        assert_eq!(parse_offset("+05:30"), Ok(19800));
        assert_eq!(parse_offset("-08"), Ok(-28800));
        assert_eq!(parse_offset("+00:53:28"), Ok(3208));
        assert!(parse_offset("+5").is_err());
        assert!(parse_offset("05").is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(
            parse_interval("1 year 2 mons 3 days 04:05:06.789"),
            Ok(Interval {
                months: 14,
                days: 3,
                micros: 14_706_789_000
            })
        );
        assert_eq!(
            parse_interval("-1 years -2 mons +3 days -04:05:06"),
            Ok(Interval {
                months: -14,
                days: 3,
                micros: -14_706_000_000
            })
        );
        assert_eq!(
            parse_interval("00:00:00"),
            Ok(Interval {
                months: 0,
                days: 0,
                micros: 0
            })
        );
        assert!(parse_interval("").is_err());
        assert!(parse_interval("1 fortnight").is_err());
        assert!(parse_interval("3").is_err());
        assert!(parse_interval("999999999999 years").is_err());
    }
}
