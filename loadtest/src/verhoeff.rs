//! Verhoeff check digits, so the loadgen can make valid Aadhaar-shaped numbers (12 digits, first
//! digit 2..=9, last digit the Verhoeff check digit of the first 11).
//!
//! The check digit itself is the identity crate's, the same code the server validates with.

use rand::Rng;

/// The Verhoeff check digit for `payload` (all digits), or `None` if it is not all digits.
pub fn check_digit(payload: &str) -> Option<u8> {
    kataar_identity::photo_id::verhoeff_check_digit(payload)
}

/// Whether `number` (all digits, check digit last) passes the Verhoeff check.
pub fn is_valid(number: &str) -> bool {
    kataar_identity::photo_id::verhoeff_valid(number)
}

/// Whether `number` is a valid Aadhaar number: 12 digits, first not 0 or 1, Verhoeff-valid.
pub fn is_valid_aadhaar(number: &str) -> bool {
    number.len() == 12 && !number.starts_with(['0', '1']) && is_valid(number)
}

/// The Aadhaar number derived from `seq`: deterministic, distinct for distinct `seq` below 2*10^10.
pub fn aadhaar_from_seq(seq: u64) -> String {
    // First digit 2..=9 from the high part, 10 more digits from the low part.
    let first = 2 + (seq / 10_000_000_000) % 8;
    let payload = format!("{first}{:010}", seq % 10_000_000_000);
    let check = check_digit(&payload).unwrap_or(0);
    format!("{payload}{check}")
}

/// A random valid Aadhaar number.
pub fn random_aadhaar<R: Rng>(rng: &mut R) -> String {
    aadhaar_from_seq(rng.gen_range(0..80_000_000_000u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Classic published examples: 236 -> 3, 12345 -> 1, 142857 -> 0.
        assert_eq!(check_digit("236"), Some(3));
        assert_eq!(check_digit("12345"), Some(1));
        assert_eq!(check_digit("142857"), Some(0));
        assert!(is_valid("2363"));
        assert!(!is_valid("2364"));
        // A published Aadhaar-format example with a valid check digit.
        assert!(is_valid_aadhaar("499118665246"));
        assert!(!is_valid_aadhaar("499118665247"));
    }
}
