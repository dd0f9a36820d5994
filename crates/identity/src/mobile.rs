//! Indian mobile numbers: normalisation (`+91`, `91`, `0` prefixes and spaces dropped) and masking.

/// Longest raw input accepted before normalisation.
pub const MOBILE_RAW_CHARS_MAX: usize = 32;

/// A normalised mobile number: exactly 10 ASCII digits, the first one 6–9.
///
/// `Debug` shows the masked form only.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mobile(String);

impl std::fmt::Debug for Mobile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mobile({})", self.masked())
    }
}

impl Mobile {
    /// The 10 digits (for the account row and the OTP sender).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 10 digits as a number: a compact, exact key (the first digit is never 0).
    pub fn as_u64(&self) -> u64 {
        self.0
            .bytes()
            .fold(0u64, |n, b| n * 10 + u64::from(b.wrapping_sub(b'0')))
    }

    /// The mobile whose [`Mobile::as_u64`] is `n`, if `n` is one.
    pub fn from_u64(n: u64) -> Option<Mobile> {
        normalize_mobile(&format!("{n:010}")).ok()
    }

    /// `"XXXXXX3210"`: six `X` and the last four digits.
    pub fn masked(&self) -> String {
        format!("XXXXXX{}", self.0.get(6..).unwrap_or(""))
    }
}

/// Why a mobile number was refused (the message never repeats the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MobileError {
    /// Not 10 digits starting with 6–9 after dropping the prefix and spaces.
    #[error("mobile must be 10 digits starting with 6, 7, 8 or 9 (an optional +91 or 0 prefix is allowed)")]
    Invalid,
}

/// Normalises and validates a mobile number.
///
/// Spaces and dashes are dropped; then a `+91` prefix, a `91` prefix (only when 12 digits
/// remain) or a `0` prefix (only when 11 digits remain) is dropped; what remains must be
/// 10 digits with the first one 6–9.
pub fn normalize_mobile(raw: &str) -> Result<Mobile, MobileError> {
    if raw.len() > MOBILE_RAW_CHARS_MAX {
        return Err(MobileError::Invalid);
    }
    let compact: String = raw.chars().filter(|c| *c != ' ' && *c != '-').collect();
    let digits = if let Some(rest) = compact.strip_prefix("+91") {
        rest
    } else if compact.len() == 12 && compact.starts_with("91") {
        &compact[2..]
    } else if compact.len() == 11 && compact.starts_with('0') {
        &compact[1..]
    } else {
        compact.as_str()
    };
    let b = digits.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) || !(b'6'..=b'9').contains(&b[0]) {
        return Err(MobileError::Invalid);
    }
    Ok(Mobile(digits.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for raw in [
            "9876543210",
            "+919876543210",
            "+91 98765 43210",
            "919876543210",
            "09876543210",
            " 98765-43210 ",
        ] {
            assert_eq!(
                normalize_mobile(raw).unwrap().as_str(),
                "9876543210",
                "{raw}"
            );
        }
        assert_eq!(
            normalize_mobile("6000000000").unwrap().as_str(),
            "6000000000"
        );
    }

    #[test]
    fn refused_forms() {
        for raw in [
            "",
            "5876543210",
            "0876543210",
            "987654321",
            "98765432100",
            "+9198765432",
            "+929876543210",
            "98765abcde",
            "00919876543210",
            "+91+919876543210",
            "９８７６５４３２１０",
        ] {
            assert_eq!(normalize_mobile(raw), Err(MobileError::Invalid), "{raw}");
        }
        assert!(normalize_mobile(&"9".repeat(MOBILE_RAW_CHARS_MAX + 1)).is_err());
    }

    #[test]
    fn ninety_one_prefix_only_at_twelve_digits() {
        // A 10-digit number that itself starts with 91 stays as it is.
        assert_eq!(
            normalize_mobile("9123456789").unwrap().as_str(),
            "9123456789"
        );
        assert_eq!(
            normalize_mobile("919123456789").unwrap().as_str(),
            "9123456789"
        );
    }

    #[test]
    fn number_form_round_trips() {
        for raw in ["9876543210", "6000000000", "9999999999"] {
            let m = normalize_mobile(raw).unwrap();
            assert_eq!(m.as_u64().to_string(), raw);
            assert_eq!(Mobile::from_u64(m.as_u64()), Some(m));
        }
        assert_eq!(Mobile::from_u64(5_876_543_210), None);
        assert_eq!(Mobile::from_u64(98_765_432_100), None);
    }

    #[test]
    fn masking() {
        let m = normalize_mobile("9876543210").unwrap();
        assert_eq!(m.masked(), "XXXXXX3210");
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("987654"), "{dbg}");
        assert!(!MobileError::Invalid.to_string().contains("987"));
    }
}
