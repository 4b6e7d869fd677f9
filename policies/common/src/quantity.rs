//! Kubernetes `resource.Quantity`: parsing and exact comparison.
//!
//! Grammar (as `k8s.io/apimachinery/pkg/api/resource.ParseQuantity` accepts it):
//!
//! ```text
//! quantity  ::= sign? number suffix?
//! number    ::= digits | digits "." digits? | "." digits
//! suffix    ::= "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"          (powers of 1024)
//!             | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" (powers of 1000)
//!             | ("e" | "E") sign? digits                          (powers of 10)
//! ```
//!
//! Values are exact: the digits are kept as a decimal digit string and scaled with integer
//! arithmetic, never through `f64`. As upstream does, a value with more precision than a
//! nano-unit is rounded up (away from zero) to the next nano-unit, and magnitudes above
//! 2^63-1 are capped there. So `500m` = `0.5`, `1e9` = `1G` ≠ `1Gi`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;
/// Largest magnitude upstream keeps: 2^63-1 units, in nano-units.
const CAP: u128 = (i64::MAX as u128) * (NANO as u128);
/// `u128` holds every 38-digit decimal number.
const U128_DIGITS: usize = 38;

/// An exact quantity, in nano-units (10^-9). Ordering compares values: `500m == 0.5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    /// Parse a quantity as written in a manifest (surrounding whitespace is ignored, as in
    /// upstream JSON decoding). The error never repeats the input.
    pub fn parse(text: &str) -> Result<Quantity, String> {
        let s = text.trim().as_bytes();
        if s.is_empty() {
            return Err("empty quantity".to_string());
        }
        let (negative, rest) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int_digits, rest) = rest.split_at(int_len);
        let (frac_digits, suffix) = match rest.split_first() {
            Some((b'.', after)) => {
                let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
                after.split_at(n)
            }
            _ => (&rest[..0], rest),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err("not a quantity: expected a number such as 500m, 0.5, 1Gi or 1e9".into());
        }
        let (base2_exp, base10_exp) = interpret_suffix(suffix)?;

        // value = digits × 10^(exp - fraction length) × 2^base2_exp; work in nano-units.
        let frac_len = i64::try_from(frac_digits.len()).unwrap_or(i64::MAX);
        let scale = base10_exp.saturating_sub(frac_len).saturating_add(9);
        let all_digits = int_digits.iter().chain(frac_digits).map(|b| b - b'0');
        let magnitude = if int_digits.len() + frac_digits.len() <= U128_DIGITS {
            // Common case: the digits fit in a u128, no allocation.
            let mantissa = all_digits.fold(0u128, |acc, d| acc * 10 + u128::from(d));
            scale_small(mantissa, base2_exp, scale)
        } else {
            let mut digits: Vec<u8> = all_digits.skip_while(|&d| d == 0).collect();
            if digits.is_empty() {
                return Ok(Quantity { nanos: 0 });
            }
            for _ in 0..base2_exp / 10 {
                mul_small(&mut digits, 1024);
            }
            scale_digits(&digits, scale)
        };
        let nanos = i128::try_from(magnitude.min(CAP)).unwrap_or(i128::MAX);
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// The value in nano-units.
    pub fn nanos(self) -> i128 {
        self.nanos
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }
}

/// Suffix → (power of two, power of ten).
fn interpret_suffix(suffix: &[u8]) -> Result<(u32, i64), String> {
    let decimal = |e: i64| Ok((0, e));
    match suffix {
        b"" => decimal(0),
        b"n" => decimal(-9),
        b"u" => decimal(-6),
        b"m" => decimal(-3),
        b"k" => decimal(3),
        b"M" => decimal(6),
        b"G" => decimal(9),
        b"T" => decimal(12),
        b"P" => decimal(15),
        b"E" => decimal(18),
        b"Ki" => Ok((10, 0)),
        b"Mi" => Ok((20, 0)),
        b"Gi" => Ok((30, 0)),
        b"Ti" => Ok((40, 0)),
        b"Pi" => Ok((50, 0)),
        b"Ei" => Ok((60, 0)),
        [b'e' | b'E', exp @ ..] if !exp.is_empty() => parse_exponent(exp).map(|e| (0, e)),
        _ => Err(
            "not a quantity: unknown suffix (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei \
             or an exponent such as e9)"
                .to_string(),
        ),
    }
}

/// A signed decimal exponent; huge values saturate (the result is capped or rounds to 1n anyway).
fn parse_exponent(exp: &[u8]) -> Result<i64, String> {
    let (negative, digits) = match exp.split_first() {
        Some((b'-', d)) => (true, d),
        Some((b'+', d)) => (false, d),
        _ => (false, exp),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("not a quantity: the exponent must be an integer, as in 1e9 or 5E-3".into());
    }
    let magnitude = digits.iter().fold(0i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Ok(if negative { -magnitude } else { magnitude })
}

/// `ceil(mantissa × 2^base2_exp × 10^scale)`, saturating at [`CAP`].
fn scale_small(mantissa: u128, base2_exp: u32, scale: i64) -> u128 {
    if mantissa == 0 {
        return 0;
    }
    let Some(mut v) = 1u128
        .checked_shl(base2_exp)
        .and_then(|f| mantissa.checked_mul(f))
    else {
        return CAP;
    };
    if scale >= 0 {
        for _ in 0..scale.min(U128_DIGITS as i64 + 1) {
            match v.checked_mul(10) {
                Some(x) if x <= CAP => v = x,
                _ => return CAP,
            }
        }
        v.min(CAP)
    } else {
        let drop = scale.unsigned_abs();
        if drop > U128_DIGITS as u64 {
            return 1; // below one nano-unit: rounds up to 1n
        }
        let p = 10u128.pow(drop as u32);
        (v / p + u128::from(v % p != 0)).min(CAP)
    }
}

/// Multiply a big-endian decimal digit string by a small factor.
fn mul_small(digits: &mut Vec<u8>, factor: u32) {
    let mut carry = 0u32;
    for d in digits.iter_mut().rev() {
        let v = u32::from(*d) * factor + carry;
        *d = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

/// `ceil(digits × 10^scale)` as an integer, saturating at [`CAP`]. `digits` has no leading zero
/// and is not empty.
fn scale_digits(digits: &[u8], scale: i64) -> u128 {
    let to_int = |d: &[u8]| d.iter().fold(0u128, |acc, &x| acc * 10 + u128::from(x));
    if scale >= 0 {
        let len = i64::try_from(digits.len()).unwrap_or(i64::MAX);
        if len.saturating_add(scale) > U128_DIGITS as i64 {
            return CAP;
        }
        // At most 38 digits in total: fits in u128.
        (0..scale).fold(to_int(digits), |acc, _| acc * 10)
    } else {
        let drop = usize::try_from(scale.unsigned_abs()).unwrap_or(usize::MAX);
        if drop >= digits.len() {
            return 1; // a non-zero value below one nano-unit rounds up to 1n
        }
        let (keep, dropped) = digits.split_at(digits.len() - drop);
        if keep.len() > U128_DIGITS {
            return CAP;
        }
        to_int(keep) + u128::from(dropped.iter().any(|&d| d != 0))
    }
}

impl fmt::Display for Quantity {
    /// Plain decimal notation, e.g. `0.5`, `1073741824`, `-0.001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let (whole, frac) = (abs / NANO as u128, abs % NANO as u128);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let frac = format!("{frac:09}");
            write!(f, "{sign}{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// A quantity together with the text it was written as (messages quote the user's spelling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spelled {
    pub text: String,
    pub value: Quantity,
}

impl Spelled {
    pub fn parse(text: &str) -> Result<Spelled, String> {
        Ok(Spelled {
            text: text.trim().to_string(),
            value: Quantity::parse(text)?,
        })
    }
}

impl fmt::Display for Spelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Written back as spelled (settings shown to users, e.g. the playground's defaults).
impl Serialize for Spelled {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Settings and manifests may write a quantity as a string or a bare number.
impl<'de> Deserialize<'de> for Spelled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = crate::de::IntOrString::deserialize(d)?;
        Spelled::parse(&raw.0).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn n(s: &str) -> i128 {
        q(s).nanos()
    }

    #[test]
    fn milli_equals_decimal_fraction() {
        assert_eq!(q("500m"), q("0.5"));
        assert_eq!(q("500m"), q(".5"));
        assert_eq!(q("1"), q("1."));
        assert_eq!(q("1000m"), q("1"));
        assert!(q("499m") < q("0.5"));
        assert_eq!(n("250m"), 250_000_000);
    }

    #[test]
    fn binary_and_decimal_suffixes_differ() {
        assert_ne!(q("1Gi"), q("1G"));
        assert!(q("1G") < q("1Gi"));
        assert_eq!(n("1Gi"), 1_073_741_824 * NANO);
        assert_eq!(n("1G"), 1_000_000_000 * NANO);
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1Mi"), q("1024Ki"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(n("0.1Ki"), 102_400_000_000);
        assert_eq!(n("1Ei"), (1i128 << 60) * NANO);
        assert_eq!(q("1k"), q("1000"));
        assert_eq!(q("1u"), q("1000n"));
    }

    #[test]
    fn decimal_exponents() {
        assert_eq!(q("1e9"), q("1G"));
        assert_eq!(q("1E3"), q("1k"));
        assert_eq!(q("1e+3"), q("1k"));
        assert_eq!(q("5e-3"), q("5m"));
        assert_eq!(q("12e-1"), q("1.2"));
        assert_eq!(q("1.5e3"), q("1500"));
        // A bare E is the exa suffix, not an exponent.
        assert_eq!(n("1E"), 1_000_000_000_000_000_000 * NANO);
    }

    #[test]
    fn long_and_short_spellings_agree() {
        // More than 38 digits takes the arbitrary-length path; the result must not change.
        let zeros = "0".repeat(45);
        for (short, long) in [
            ("1.5Gi", format!("1.5{zeros}Gi")),
            ("250m", format!("0.250{zeros}")),
            ("7e-12", format!("{zeros}7e-12")),
            ("12k", format!("{zeros}12k")),
            ("1e40", format!("1{zeros}")),
        ] {
            assert_eq!(q(short), q(&long), "{short}");
        }
    }

    #[test]
    fn signs() {
        assert_eq!(q("+1"), q("1"));
        assert!(q("-1").is_negative());
        assert!(q("-1") < q("0"));
        assert_eq!(q("-0"), q("0"));
        assert_eq!(q("-500m").nanos(), -500_000_000);
    }

    #[test]
    fn rounding_and_caps_follow_upstream() {
        // Below a nano-unit rounds up (away from zero).
        assert_eq!(n("0.0000000001"), 1);
        assert_eq!(n("1.0000000001"), NANO + 1);
        assert_eq!(n("-0.0000000001"), -1);
        assert_eq!(n("1e-30"), 1);
        assert_eq!(n("0.000000000"), 0);
        // Above 2^63-1 is capped.
        assert_eq!(n("1e100"), CAP as i128);
        assert_eq!(q("9223372036854775807"), q("1e30"));
        assert_eq!(n("-1e999999999999999999999"), -(CAP as i128));
        // Many digits with a negative exponent stay exact.
        assert_eq!(
            n("1000000000000000000000000000000000000000000000000000e-45"),
            1_000_000 * NANO
        );
        assert_eq!(
            n("0000000000000000000000000000000000000000000000000002"),
            2 * NANO
        );
    }

    #[test]
    fn garbage_is_rejected_without_echoing_it() {
        for bad in [
            "",
            " ",
            "abc",
            "1.2.3",
            "1Gb",
            "1gi",
            "1K",
            "1e",
            "1e+",
            "1e1.5",
            "--1",
            "1 Gi",
            "0x10",
            ".",
            "+",
            "1ki",
            "Gi",
            "1mm",
            "1e3Gi",
            "secret-value",
        ] {
            let err = Quantity::parse(bad).expect_err(bad);
            assert!(
                bad.len() < 3 || !err.contains(bad),
                "{bad:?} echoed in {err}"
            );
        }
    }

    #[test]
    fn display_is_plain_decimal() {
        assert_eq!(q("500m").to_string(), "0.5");
        assert_eq!(q("1Gi").to_string(), "1073741824");
        assert_eq!(q("-1m").to_string(), "-0.001");
        assert_eq!(q("1n").to_string(), "0.000000001");
    }

    #[test]
    fn spelled_keeps_the_text_and_accepts_numbers() {
        let v: Vec<Spelled> = serde_json::from_str(r#"["1Gi", 2, 0.5, " 3 "]"#).unwrap();
        assert_eq!(v[0].text, "1Gi");
        assert_eq!(v[1].value, q("2"));
        assert_eq!(v[2].value, q("500m"));
        assert_eq!(v[3].text, "3");
        let err = serde_json::from_str::<Spelled>(r#""12XB""#).unwrap_err();
        assert!(err.to_string().contains("unknown suffix"), "{err}");
    }
}
