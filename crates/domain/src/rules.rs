//! Eligibility, as pure functions of the person's record and the session. The engine calls
//! them under the person's shard lock so that the record cannot change in between.

use crate::error::BookingError;
use crate::model::{Dose, DoseRecord};
use crate::vaccine::Vaccine;
use chrono::{Datelike, Days, NaiveDate};

/// Age in the session's year: `session year - birth year` (how CoWIN counted it).
pub fn age_in_year(birth_year: u16, on: NaiveDate) -> i32 {
    on.year() - i32::from(birth_year)
}

/// Whether `birth_year` falls in the band `[min_age, max_age]` on `date`.
pub fn age_allowed(birth_year: u16, date: NaiveDate, min_age: u16, max_age: Option<u16>) -> bool {
    let age = age_in_year(birth_year, date);
    let old_enough = age >= i32::from(min_age);
    let young_enough = max_age.is_none_or(|max| age <= i32::from(max));
    old_enough && young_enough
}

/// What the person may book next, given the doses already given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextDose {
    /// Dose 1, any vaccine, any day.
    First,
    /// Dose 2 of `vaccine`, from `earliest_date` on.
    Second {
        /// Must match dose 1.
        vaccine: Vaccine,
        /// Dose 1's date plus the vaccine's minimum interval.
        earliest_date: NaiveDate,
    },
    /// Both doses given.
    Complete,
}

/// Computes the next dose from the dose history.
pub fn next_dose(doses: &[DoseRecord]) -> NextDose {
    let first = doses.iter().find(|d| d.dose == Dose::One);
    let second = doses.iter().find(|d| d.dose == Dose::Two);
    match (first, second) {
        (_, Some(_)) => NextDose::Complete,
        (None, None) => NextDose::First,
        (Some(d1), None) => {
            let interval = u64::from(d1.vaccine.dose2_interval_days_min());
            let earliest_date = d1
                .date
                .checked_add_days(Days::new(interval))
                .unwrap_or(NaiveDate::MAX);
            NextDose::Second {
                vaccine: d1.vaccine,
                earliest_date,
            }
        }
    }
}

/// Checks the dose rules in the contract's order: `dose_sequence`, `vaccine_mismatch`,
/// `dose_interval`.
pub fn check_dose(
    doses: &[DoseRecord],
    dose: Dose,
    vaccine: Vaccine,
    date: NaiveDate,
) -> Result<(), BookingError> {
    match (next_dose(doses), dose) {
        (NextDose::First, Dose::One) => Ok(()),
        (NextDose::First, Dose::Two) => Err(BookingError::DoseSequence(
            "dose 2 needs dose 1 to be recorded first",
        )),
        (NextDose::Second { .. }, Dose::One) | (NextDose::Complete, Dose::One) => {
            Err(BookingError::DoseSequence("dose 1 has already been given"))
        }
        (NextDose::Complete, Dose::Two) => {
            Err(BookingError::DoseSequence("dose 2 has already been given"))
        }
        (
            NextDose::Second {
                vaccine: first,
                earliest_date,
            },
            Dose::Two,
        ) => {
            if first != vaccine {
                Err(BookingError::VaccineMismatch)
            } else if date < earliest_date {
                Err(BookingError::DoseInterval { earliest_date })
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use chrono::Utc;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
    }

    fn dose1(vaccine: Vaccine, date: NaiveDate) -> DoseRecord {
        DoseRecord {
            beneficiary_id: BeneficiaryId(1),
            dose: Dose::One,
            vaccine,
            batch: "B1".into(),
            date,
            centre_id: CentreId(1),
            booking_id: BookingId(1),
            operator_id: OperatorId(1),
            administered_at: Utc::now(),
        }
    }

    #[test]
    fn age_band_is_inclusive() {
        let on = day(2026, 12, 1);
        assert!(age_allowed(2008, on, 18, Some(44)));
        assert!(!age_allowed(2009, on, 18, Some(44)));
        assert!(age_allowed(1982, on, 18, Some(44)));
        assert!(!age_allowed(1981, on, 18, Some(44)));
        assert!(age_allowed(1900, on, 45, None));
    }

    #[test]
    fn dose_rules_in_contract_order() {
        let d = day(2026, 1, 1);
        assert_eq!(check_dose(&[], Dose::One, Vaccine::Covaxin, d), Ok(()));
        assert_eq!(
            check_dose(&[], Dose::Two, Vaccine::Covaxin, d).map_err(|e| e.code()),
            Err("dose_sequence")
        );
        let history = [dose1(Vaccine::Covaxin, d)];
        assert_eq!(
            check_dose(&history, Dose::One, Vaccine::Covaxin, day(2026, 6, 1))
                .map_err(|e| e.code()),
            Err("dose_sequence")
        );
        assert_eq!(
            check_dose(&history, Dose::Two, Vaccine::Covishield, day(2026, 1, 2))
                .map_err(|e| e.code()),
            Err("vaccine_mismatch")
        );
        assert_eq!(
            check_dose(&history, Dose::Two, Vaccine::Covaxin, day(2026, 1, 28)),
            Err(BookingError::DoseInterval {
                earliest_date: day(2026, 1, 29)
            })
        );
        assert_eq!(
            check_dose(&history, Dose::Two, Vaccine::Covaxin, day(2026, 1, 29)),
            Ok(())
        );
        let covishield = [dose1(Vaccine::Covishield, d)];
        assert_eq!(
            next_dose(&covishield),
            NextDose::Second {
                vaccine: Vaccine::Covishield,
                earliest_date: day(2026, 3, 26)
            }
        );
    }
}
