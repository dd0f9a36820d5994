//! Typed identifiers. Every id is a JSON number below 2^53 so that JavaScript clients read it
//! exactly; [`PersonKey`] is the HMAC of a normalised photo-ID and never leaves the server.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest id the system hands out: ids are JSON numbers and must stay exact in a double.
pub const ID_MAX: u64 = (1 << 53) - 1;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A state (CoWIN numbering: 1..=37).
    StateId
);
id_type!(
    /// A district (CoWIN numbering, e.g. 312 Bhopal).
    DistrictId
);
id_type!(
    /// A vaccination centre.
    CentreId
);
id_type!(
    /// A session: one centre, one date, one vaccine, one age band.
    SessionId
);
id_type!(
    /// A time slot within a session.
    SlotId
);
id_type!(
    /// A pool: slot x dose x channel, the unit of capacity.
    PoolId
);
id_type!(
    /// A citizen account (one mobile number).
    AccountId
);
id_type!(
    /// A beneficiary (a person on an account).
    BeneficiaryId
);
id_type!(
    /// A booking.
    BookingId
);
id_type!(
    /// An operator key.
    OperatorId
);
id_type!(
    /// A store batch: one group-committed transaction.
    BatchId
);
id_type!(
    /// A launch release: sessions that open together behind one waiting room.
    ReleaseId
);

/// Where operator keys' idempotency records live in the account space of
/// [`crate::IdempotencyRecord::account_id`]: `2^62 + operator id`. Citizen accounts are at most
/// [`ID_MAX`] (2^53 − 1), so the two never meet, and the value still fits a signed 64-bit column.
pub const OPERATOR_IDEMPOTENCY_BASE: u64 = 1 << 62;

impl OperatorId {
    /// The idempotency scope of this operator key: its records are kept (and bounded per
    /// account) apart from every citizen account's.
    pub fn idempotency_scope(self) -> AccountId {
        AccountId(OPERATOR_IDEMPOTENCY_BASE + (self.0 & ID_MAX))
    }
}

/// HMAC-SHA256 of a normalised photo-ID: the person, independent of account or phone.
///
/// Its `Debug` shows only a short prefix so that logs never carry the whole key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PersonKey(pub [u8; 32]);

impl PersonKey {
    /// The key as lowercase hex (for storage formats that lack a bytes type).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`PersonKey::to_hex`] output.
    pub fn from_hex(text: &str) -> Option<PersonKey> {
        let bytes = hex::decode(text).ok()?;
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(PersonKey(array))
    }

    /// Shard selector: the first eight bytes (the key is already uniformly distributed).
    pub fn shard_hash(&self) -> u64 {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(prefix)
    }
}

impl fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonKey({}…)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_key_hex_round_trip_and_redacted_debug() {
        let key = PersonKey([7u8; 32]);
        assert_eq!(PersonKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(PersonKey::from_hex("zz"), None);
        let shown = format!("{key:?}");
        assert!(shown.len() < 30, "{shown}");
        assert!(!shown.contains(&key.to_hex()));
    }

    #[test]
    fn operator_idempotency_scopes_are_apart_from_accounts() {
        let scope = OperatorId(ID_MAX).idempotency_scope();
        assert!(scope.0 > ID_MAX);
        assert!(i64::try_from(scope.0).is_ok());
        assert_ne!(
            OperatorId(1).idempotency_scope(),
            OperatorId(2).idempotency_scope()
        );
        assert_eq!(
            OperatorId(0).idempotency_scope().0,
            OPERATOR_IDEMPOTENCY_BASE
        );
    }

    #[test]
    fn ids_serialize_as_numbers() {
        let text = serde_json::to_string(&PoolId(42)).unwrap_or_default();
        assert_eq!(text, "42");
    }
}
