//! Exact decimal arithmetic on digit strings: parse, round half away from zero, format.
//!
//! Postgres numerics can have up to 131072 integer digits, far beyond `rust_decimal`'s 28,
//! so rounding works on the digits themselves. Nothing here goes through a float.

use std::fmt;

/// A finite decimal: sign, integer digits (no leading zeros) and fraction digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    int: String,
    frac: String,
}

/// Why text is not a finite decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    NotANumber,
    Infinite,
    Invalid,
}

impl Decimal {
    /// Parse `[+-]digits[.digits][e[+-]digits]`, `NaN` and `[+-]Infinity` (distinct errors).
    pub(crate) fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let t = text.trim();
        let (negative, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        if body.eq_ignore_ascii_case("nan") {
            return Err(DecimalError::NotANumber);
        }
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Err(DecimalError::Infinite);
        }
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], parse_exponent(&body[i + 1..])?),
            None => (body, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return Err(DecimalError::Invalid);
        }
        Ok(Decimal::from_parts(negative, int, frac).shift(exp))
    }

    /// Normalise: strip leading integer zeros and trailing fraction zeros; zero is positive.
    fn from_parts(negative: bool, int: &str, frac: &str) -> Decimal {
        let int = int.trim_start_matches('0').to_string();
        let frac = frac.trim_end_matches('0').to_string();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Decimal {
            negative,
            int,
            frac,
        }
    }

    /// Multiply by 10^exp.
    fn shift(self, exp: i64) -> Decimal {
        let all = format!("{}{}", self.int, self.frac);
        let point = self.int.len() as i64 + exp;
        let (int, frac) = if point <= 0 {
            (
                String::new(),
                format!("{}{all}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= all.len() {
            (
                format!("{all}{}", "0".repeat(point as usize - all.len())),
                String::new(),
            )
        } else {
            let (i, f) = all.split_at(point as usize);
            (i.to_string(), f.to_string())
        };
        Decimal::from_parts(self.negative, &int, &frac)
    }

    /// Number of integer digits (0 for |x| < 1).
    pub(crate) fn int_digits(&self) -> usize {
        self.int.len()
    }

    /// Round to `scale` fraction digits, half away from zero.
    pub(crate) fn round(&self, scale: usize) -> Decimal {
        if self.frac.len() <= scale {
            return self.clone();
        }
        let round_up = self.frac.as_bytes()[scale] >= b'5';
        let kept = format!("{}{}", self.int, &self.frac[..scale]);
        let kept = if round_up { increment(&kept) } else { kept };
        let split = kept.len() - scale;
        Decimal::from_parts(self.negative, &kept[..split], &kept[split..])
    }

    /// Text with exactly `scale` fraction digits (the value must already fit).
    pub(crate) fn to_fixed(&self, scale: usize) -> String {
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let sign = if self.negative { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{int}");
        }
        let pad = scale.saturating_sub(self.frac.len());
        format!("{sign}{int}.{}{}", self.frac, "0".repeat(pad))
    }
}

impl fmt::Display for Decimal {
    /// Canonical form: no leading/trailing zeros, `0` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_fixed(self.frac.len()))
    }
}

/// Parse an exponent, bounded so shifting cannot allocate absurdly.
fn parse_exponent(s: &str) -> Result<i64, DecimalError> {
    let e: i64 = s.parse().map_err(|_| DecimalError::Invalid)?;
    if e.abs() > 200_000 {
        return Err(DecimalError::Invalid);
    }
    Ok(e)
}

/// Add one to a digit string (which may be empty, meaning zero).
fn increment(digits: &str) -> String {
    let mut out: Vec<u8> = digits.bytes().collect();
    for d in out.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8(out).expect("ascii digits");
        }
    }
    let mut s = String::from("1");
    s.push_str(std::str::from_utf8(&out).expect("ascii digits"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str, scale: usize) -> String {
        Decimal::parse(s).unwrap().round(scale).to_fixed(scale)
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round("1.005", 2), "1.01");
        assert_eq!(round("1.004999", 2), "1.00");
        assert_eq!(round("-1.005", 2), "-1.01");
        assert_eq!(round("9.995", 2), "10.00");
        assert_eq!(round("-0.001", 2), "0.00");
        assert_eq!(round("0.5", 0), "1");
        assert_eq!(round("12", 3), "12.000");
    }

    #[test]
    fn exact_beyond_28_digits() {
        let big = "123456789012345678901234567890.123456789012345678905";
        assert_eq!(
            round(big, 20),
            "123456789012345678901234567890.12345678901234567891"
        );
        assert_eq!(
            round("99999999999999999999999999999999.9999", 2),
            "100000000000000000000000000000000.00"
        );
        assert_eq!(Decimal::parse(big).unwrap().int_digits(), 30);
    }

    #[test]
    fn parses_exponents_and_specials() {
        assert_eq!(Decimal::parse("1.5e3").unwrap().to_string(), "1500");
        assert_eq!(Decimal::parse("15E-3").unwrap().to_string(), "0.015");
        assert_eq!(Decimal::parse("-000.0100").unwrap().to_string(), "-0.01");
        assert_eq!(Decimal::parse("-0").unwrap().to_string(), "0");
        assert_eq!(Decimal::parse("NaN"), Err(DecimalError::NotANumber));
        assert_eq!(Decimal::parse("-Infinity"), Err(DecimalError::Infinite));
        assert_eq!(Decimal::parse("1.2.3"), Err(DecimalError::Invalid));
        assert_eq!(Decimal::parse(""), Err(DecimalError::Invalid));
        assert_eq!(Decimal::parse("."), Err(DecimalError::Invalid));
    }
}
