//! Verhoeff check digits, so the loadgen can make valid Aadhaar-shaped numbers (12 digits, first
//! digit 2..=9, last digit the Verhoeff check digit of the first 11).

use rand::Rng;

/// The dihedral group D5 multiplication table.
const D: [[u8; 10]; 10] = [
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

/// The permutation table, applied `position mod 8` times.
const P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// The inverse table.
const INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Digits of an ASCII string, or `None` if any character is not a digit.
fn digits(s: &str) -> Option<Vec<u8>> {
    s.bytes()
        .map(|b| b.is_ascii_digit().then(|| b - b'0'))
        .collect()
}

/// The Verhoeff check digit for `payload` (all digits), or `None` if it is not all digits.
pub fn check_digit(payload: &str) -> Option<u8> {
    let ds = digits(payload)?;
    let mut c = 0u8;
    for (i, d) in ds.iter().rev().enumerate() {
        c = D[usize::from(c)][usize::from(P[(i + 1) % 8][usize::from(*d)])];
    }
    Some(INV[usize::from(c)])
}

/// Whether `number` (all digits, check digit last) passes the Verhoeff check.
pub fn is_valid(number: &str) -> bool {
    let Some(ds) = digits(number) else {
        return false;
    };
    if ds.is_empty() {
        return false;
    }
    let mut c = 0u8;
    for (i, d) in ds.iter().rev().enumerate() {
        c = D[usize::from(c)][usize::from(P[i % 8][usize::from(*d)])];
    }
    c == 0
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
