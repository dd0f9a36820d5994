//! Vaccines as CoWIN named them, and their dose rules.

use serde::{Deserialize, Serialize};

/// A vaccine. Serialised with CoWIN's names (`"COVISHIELD"`, `"SPUTNIK V"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Vaccine {
    /// Oxford-AstraZeneca, made by the Serum Institute of India.
    #[serde(rename = "COVISHIELD")]
    Covishield,
    /// Bharat Biotech.
    #[serde(rename = "COVAXIN")]
    Covaxin,
    /// Gamaleya.
    #[serde(rename = "SPUTNIK V")]
    SputnikV,
    /// Zydus Cadila.
    #[serde(rename = "ZYCOV-D")]
    ZycovD,
    /// Biological E.
    #[serde(rename = "CORBEVAX")]
    Corbevax,
    /// Novavax, made by the Serum Institute of India.
    #[serde(rename = "COVOVAX")]
    Covovax,
}

impl Vaccine {
    /// Every vaccine, in catalogue order.
    pub const ALL: [Vaccine; 6] = [
        Vaccine::Covishield,
        Vaccine::Covaxin,
        Vaccine::SputnikV,
        Vaccine::ZycovD,
        Vaccine::Corbevax,
        Vaccine::Covovax,
    ];

    /// The name CoWIN used, which is also the wire and storage form.
    pub fn name(self) -> &'static str {
        match self {
            Vaccine::Covishield => "COVISHIELD",
            Vaccine::Covaxin => "COVAXIN",
            Vaccine::SputnikV => "SPUTNIK V",
            Vaccine::ZycovD => "ZYCOV-D",
            Vaccine::Corbevax => "CORBEVAX",
            Vaccine::Covovax => "COVOVAX",
        }
    }

    /// Parses a name case-insensitively (`"covishield"`, `"Sputnik V"`).
    pub fn parse(text: &str) -> Option<Vaccine> {
        let upper = text.trim().to_ascii_uppercase();
        Vaccine::ALL.into_iter().find(|v| v.name() == upper)
    }

    /// Minimum days between dose 1 and dose 2 (the national guidance of 2021-22).
    pub fn dose2_interval_days_min(self) -> u32 {
        match self {
            Vaccine::Covishield => 84,
            Vaccine::Covaxin => 28,
            Vaccine::SputnikV => 21,
            Vaccine::ZycovD => 28,
            Vaccine::Corbevax => 28,
            Vaccine::Covovax => 21,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in Vaccine::ALL {
            assert_eq!(Vaccine::parse(v.name()), Some(v));
            assert_eq!(Vaccine::parse(&v.name().to_lowercase()), Some(v));
        }
        assert_eq!(Vaccine::parse("PFIZER"), None);
        assert_eq!(Vaccine::Covishield.dose2_interval_days_min(), 84);
        assert_eq!(Vaccine::Covaxin.dose2_interval_days_min(), 28);
    }
}
