//! Photo IDs: the seven CoWIN ID types, normalisation, validation (Aadhaar's Verhoeff check digit
//! included) and masking.
//!
//! A [`NormalizedId`] holds a clear ID number; it never shows it through `Debug`, and
//! [`PhotoIdError`] messages never contain it. The only ways out are [`NormalizedId::masked`],
//! [`NormalizedId::last4`] and (for keying) [`NormalizedId::expose_secret`].

use serde::{Deserialize, Serialize};

/// Longest raw input accepted before normalisation (longer input is refused without scanning it).
pub const ID_RAW_CHARS_MAX: usize = 64;
/// Shortest normalised number for the free-form types (driving licence, voter ID, ...).
pub const ID_OTHER_CHARS_MIN: usize = 4;
/// Longest normalised number for the free-form types.
pub const ID_OTHER_CHARS_MAX: usize = 20;

/// A photo-ID type, as the v1 API names it (`snake_case`) and as CoWIN numbered it (1..=7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// Aadhaar: 12 digits with a Verhoeff check digit.
    Aadhaar,
    /// PAN: `AAAAA9999A`.
    Pan,
    /// Indian passport: one letter and 7 digits.
    Passport,
    /// Driving licence: free form.
    DrivingLicence,
    /// Voter ID (EPIC): free form.
    VoterId,
    /// Ration card: free form.
    RationCard,
    /// NPR smart card: free form.
    NprSmartCard,
}

impl IdType {
    /// Every type, in CoWIN id order.
    pub const ALL: [IdType; 7] = [
        IdType::Aadhaar,
        IdType::Pan,
        IdType::Passport,
        IdType::DrivingLicence,
        IdType::VoterId,
        IdType::RationCard,
        IdType::NprSmartCard,
    ];

    /// The v1 API name (`"aadhaar"`, `"driving_licence"`, ...), same as the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::Aadhaar => "aadhaar",
            IdType::Pan => "pan",
            IdType::Passport => "passport",
            IdType::DrivingLicence => "driving_licence",
            IdType::VoterId => "voter_id",
            IdType::RationCard => "ration_card",
            IdType::NprSmartCard => "npr_smart_card",
        }
    }

    /// Parses the v1 API name (exact, lower case).
    pub fn parse(s: &str) -> Option<IdType> {
        IdType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The display name CoWIN used (`"Aadhaar Card"`, `"Driving License"`, ...).
    pub fn cowin_name(self) -> &'static str {
        match self {
            IdType::Aadhaar => "Aadhaar Card",
            IdType::Pan => "PAN Card",
            IdType::Passport => "Passport",
            IdType::DrivingLicence => "Driving License",
            IdType::VoterId => "Voter ID",
            IdType::RationCard => "Ration Card",
            IdType::NprSmartCard => "NPR Smart Card",
        }
    }

    /// The stable numeric id (1..=7) of CoWIN's `idTypes` list.
    pub fn cowin_id(self) -> u8 {
        match self {
            IdType::Aadhaar => 1,
            IdType::Pan => 2,
            IdType::Passport => 3,
            IdType::DrivingLicence => 4,
            IdType::VoterId => 5,
            IdType::RationCard => 6,
            IdType::NprSmartCard => 7,
        }
    }

    /// The type for a CoWIN numeric id, if it is one of 1..=7.
    pub fn from_cowin_id(id: u64) -> Option<IdType> {
        IdType::ALL
            .into_iter()
            .find(|t| u64::from(t.cowin_id()) == id)
    }
}

impl std::fmt::Display for IdType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an ID number was refused. Messages name the type and the rule, never the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoIdError {
    /// Nothing left after normalisation.
    #[error("{id_type} number is empty")]
    Empty {
        /// The type asked for.
        id_type: IdType,
    },
    /// Longer than [`ID_RAW_CHARS_MAX`] before normalisation.
    #[error("{id_type} number is too long")]
    TooLong {
        /// The type asked for.
        id_type: IdType,
    },
    /// The shape is wrong for the type; `rule` says what the shape must be.
    #[error("{id_type} number must be {rule}")]
    BadFormat {
        /// The type asked for.
        id_type: IdType,
        /// The expected shape, in words.
        rule: &'static str,
    },
    /// An Aadhaar number with the right shape whose Verhoeff check digit is wrong.
    #[error("aadhaar number has an invalid check digit")]
    AadhaarChecksum,
}

/// A validated, normalised ID number (upper case, no spaces or dashes) with its type.
///
/// `Debug` is redacted; there is deliberately no `Display`, `Serialize` or `Clone`-to-string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalizedId {
    id_type: IdType,
    number: String,
}

impl std::fmt::Debug for NormalizedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NormalizedId")
            .field("id_type", &self.id_type)
            .field("number", &"<redacted>")
            .finish()
    }
}

impl NormalizedId {
    /// The ID's type.
    pub fn id_type(&self) -> IdType {
        self.id_type
    }

    /// The clear normalised number. Only for keying (HMAC); never log, store or return it.
    pub fn expose_secret(&self) -> &str {
        &self.number
    }

    /// The last four characters (every normalised number has at least four).
    pub fn last4(&self) -> &str {
        let start = self.number.len().saturating_sub(4);
        // Normalised numbers are ASCII, so any byte index is a char boundary.
        self.number.get(start..).unwrap_or("")
    }

    /// Aadhaar: `"XXXX-XXXX-1234"`; others: `X` for every character but the last four.
    pub fn masked(&self) -> String {
        if self.id_type == IdType::Aadhaar {
            return format!("XXXX-XXXX-{}", self.last4());
        }
        let hidden = self.number.len().saturating_sub(4);
        let mut out = "X".repeat(hidden);
        out.push_str(self.last4());
        out
    }
}

/// Normalises (upper case; whitespace and `-` dropped) then validates `raw` as an `id_type`.
pub fn normalize_and_validate(id_type: IdType, raw: &str) -> Result<NormalizedId, PhotoIdError> {
    if raw.len() > ID_RAW_CHARS_MAX {
        return Err(PhotoIdError::TooLong { id_type });
    }
    let number: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if number.is_empty() {
        return Err(PhotoIdError::Empty { id_type });
    }
    let bad = |rule| PhotoIdError::BadFormat { id_type, rule };
    let b = number.as_bytes();
    match id_type {
        IdType::Aadhaar => {
            let rule = "12 digits, not starting with 0 or 1";
            if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' || b[0] == b'1' {
                return Err(bad(rule));
            }
            if !verhoeff_valid(&number) {
                return Err(PhotoIdError::AadhaarChecksum);
            }
        }
        IdType::Pan => {
            let ok = b.len() == 10
                && b[..5].iter().all(u8::is_ascii_uppercase)
                && b[5..9].iter().all(u8::is_ascii_digit)
                && b[9].is_ascii_uppercase();
            if !ok {
                return Err(bad("5 letters, 4 digits and a letter (AAAAA9999A)"));
            }
        }
        IdType::Passport => {
            let ok =
                b.len() == 8 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit);
            if !ok {
                return Err(bad("one letter and 7 digits"));
            }
        }
        IdType::DrivingLicence | IdType::VoterId | IdType::RationCard | IdType::NprSmartCard => {
            let ok = (ID_OTHER_CHARS_MIN..=ID_OTHER_CHARS_MAX).contains(&b.len())
                && b.iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'/');
            if !ok {
                return Err(bad("4 to 20 letters, digits, '-' or '/'"));
            }
        }
    }
    Ok(NormalizedId { id_type, number })
}

/// Verhoeff multiplication table (the dihedral group D5).
const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Verhoeff permutation table.
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Verhoeff inverse table.
const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Runs the Verhoeff checksum over `digits`, right to left, starting at permutation `offset`.
/// Returns `None` if a character is not an ASCII digit.
fn verhoeff_fold(digits: &str, offset: usize) -> Option<u8> {
    let mut c = 0u8;
    for (i, ch) in digits.bytes().rev().enumerate() {
        if !ch.is_ascii_digit() {
            return None;
        }
        let p = VERHOEFF_P[(i + offset) % 8][usize::from(ch - b'0')];
        c = VERHOEFF_D[usize::from(c)][usize::from(p)];
    }
    Some(c)
}

/// True if `digits` (check digit last) passes the Verhoeff check.
pub fn verhoeff_valid(digits: &str) -> bool {
    !digits.is_empty() && verhoeff_fold(digits, 0) == Some(0)
}

/// The Verhoeff check digit to append to `digits`, or `None` if they are not all ASCII digits.
pub fn verhoeff_check_digit(digits: &str) -> Option<u8> {
    verhoeff_fold(digits, 1).map(|c| VERHOEFF_INV[usize::from(c)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with_check(prefix: &str) -> String {
        format!("{prefix}{}", verhoeff_check_digit(prefix).unwrap())
    }

    #[test]
    fn verhoeff_known_vectors() {
        // Published examples: 236 -> 3, 12345 -> 1, 75872 -> 2.
        assert_eq!(verhoeff_check_digit("236"), Some(3));
        assert_eq!(verhoeff_check_digit("12345"), Some(1));
        assert_eq!(verhoeff_check_digit("75872"), Some(2));
        assert!(verhoeff_valid("2363"));
        assert!(verhoeff_valid("123451"));
        assert!(verhoeff_valid("758722"));
        assert!(!verhoeff_valid("2364"));
        assert!(!verhoeff_valid("123415")); // adjacent transposition is caught
        assert!(!verhoeff_valid(""));
        assert_eq!(verhoeff_check_digit("12a"), None);
    }

    #[test]
    fn aadhaar_valid_and_every_single_digit_change_fails() {
        let n = with_check("23456789012");
        let id = normalize_and_validate(IdType::Aadhaar, &n).unwrap();
        assert_eq!(id.expose_secret(), n);
        for pos in 1..12 {
            for d in b'0'..=b'9' {
                let mut bytes = n.clone().into_bytes();
                if bytes[pos] == d {
                    continue;
                }
                bytes[pos] = d;
                let changed = String::from_utf8(bytes).unwrap();
                assert_eq!(
                    normalize_and_validate(IdType::Aadhaar, &changed),
                    Err(PhotoIdError::AadhaarChecksum),
                    "position {pos}"
                );
            }
        }
    }

    #[test]
    fn aadhaar_normalisation_makes_one_person() {
        let n = with_check("98765432109");
        let spaced = format!("{} {} {}", &n[..4], &n[4..8], &n[8..]);
        let dashed = format!(" {}-{}-{} ", &n[..4], &n[4..8], &n[8..]);
        let a = normalize_and_validate(IdType::Aadhaar, &n).unwrap();
        let b = normalize_and_validate(IdType::Aadhaar, &spaced).unwrap();
        let c = normalize_and_validate(IdType::Aadhaar, &dashed).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.masked(), format!("XXXX-XXXX-{}", &n[8..]));
        assert_eq!(a.last4(), &n[8..]);
    }

    #[test]
    fn aadhaar_shape_rules() {
        let starts_0 = with_check("03456789012");
        let starts_1 = with_check("13456789012");
        for bad in [
            starts_0.as_str(),
            starts_1.as_str(),
            "2345678901",
            "2345678901234",
            "23456789012A",
        ] {
            let err = normalize_and_validate(IdType::Aadhaar, bad).unwrap_err();
            assert!(
                matches!(err, PhotoIdError::BadFormat { .. }),
                "{bad}: {err:?}"
            );
        }
        assert!(matches!(
            normalize_and_validate(IdType::Aadhaar, " - "),
            Err(PhotoIdError::Empty { .. })
        ));
        let long = "2".repeat(ID_RAW_CHARS_MAX + 1);
        assert!(matches!(
            normalize_and_validate(IdType::Aadhaar, &long),
            Err(PhotoIdError::TooLong { .. })
        ));
    }

    #[test]
    fn pan_and_passport() {
        let pan = normalize_and_validate(IdType::Pan, "abcde 1234 f").unwrap();
        assert_eq!(pan.expose_secret(), "ABCDE1234F");
        assert_eq!(pan.masked(), "XXXXXX234F");
        for bad in ["ABCD12345F", "ABCDE1234", "ABCDE12345", "1BCDE1234F"] {
            assert!(normalize_and_validate(IdType::Pan, bad).is_err(), "{bad}");
        }
        let pp = normalize_and_validate(IdType::Passport, "j-8369854").unwrap();
        assert_eq!(pp.expose_secret(), "J8369854");
        assert_eq!(pp.masked(), "XXXX9854");
        for bad in ["J836985", "J83698541", "18369854", "JJ369854"] {
            assert!(
                normalize_and_validate(IdType::Passport, bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn free_form_types() {
        let dl = normalize_and_validate(IdType::DrivingLicence, "mh-12 2011/0062821").unwrap();
        assert_eq!(dl.expose_secret(), "MH122011/0062821");
        assert_eq!(dl.masked(), "XXXXXXXXXXXX2821");
        assert_eq!(dl.masked().len(), dl.expose_secret().len());
        let short = normalize_and_validate(IdType::VoterId, "ab12").unwrap();
        assert_eq!(short.masked(), "AB12");
        for bad in [
            "ab1",
            "A".repeat(21).as_str(),
            "ABC_1234",
            "ABC.1234",
            "ÄBC1234",
        ] {
            assert!(
                normalize_and_validate(IdType::RationCard, bad).is_err(),
                "{bad}"
            );
        }
        assert!(normalize_and_validate(IdType::NprSmartCard, &"9".repeat(20)).is_ok());
    }

    #[test]
    fn debug_and_errors_never_show_the_number() {
        let n = with_check("87654321098");
        let id = normalize_and_validate(IdType::Aadhaar, &n).unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&n) && !dbg.contains(&n[..8]), "{dbg}");
        let mut wrong = n.clone().into_bytes();
        wrong[3] = if wrong[3] == b'5' { b'6' } else { b'5' };
        let wrong = String::from_utf8(wrong).unwrap();
        let err = normalize_and_validate(IdType::Aadhaar, &wrong).unwrap_err();
        assert!(!err.to_string().contains(&wrong[..6]));
        let err = normalize_and_validate(IdType::Pan, "QWERT99999").unwrap_err();
        assert!(!err.to_string().contains("QWERT"), "{err}");
        assert!(!format!("{err:?}").contains("QWERT"));
    }

    #[test]
    fn id_type_names_and_ids() {
        for (i, t) in IdType::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(t.cowin_id()), i + 1);
            assert_eq!(IdType::from_cowin_id(u64::from(t.cowin_id())), Some(t));
            assert_eq!(IdType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<IdType>(&json).unwrap(), t);
        }
        assert_eq!(IdType::DrivingLicence.cowin_name(), "Driving License");
        assert_eq!(IdType::NprSmartCard.cowin_name(), "NPR Smart Card");
        assert_eq!(IdType::Aadhaar.cowin_name(), "Aadhaar Card");
        assert_eq!(IdType::from_cowin_id(0), None);
        assert_eq!(IdType::from_cowin_id(8), None);
        assert_eq!(IdType::parse("Aadhaar"), None);
    }
}
