//! Ticket ids and waiting-room passes: short ASCII strings that carry their own check.
//!
//! A ticket id is `<release>-<index>-<tag>`, the tag being 16 hex digits of
//! HMAC-SHA256(key, "ticket" ‖ release ‖ index): the id names its place directly (no lookup
//! table), and cannot be made up for a place one was not given.
//!
//! A pass is `KP1.<release>.<index>.<account>.<expires_ms>.<sig>`, the signature being 32 hex
//! digits of HMAC-SHA256(key, "pass" ‖ those four numbers): checked without any state, bound
//! to one account and one release, valid until `expires_ms`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A key for ticket tags and pass signatures (kept in memory only), held as the keyed HMAC
/// state so that each tag costs two compressions.
#[derive(Clone)]
pub struct Key(HmacSha256);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(redacted)")
    }
}

impl Key {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        // HMAC accepts a key of any length, so `new_from_slice` cannot fail here.
        match HmacSha256::new_from_slice(&bytes) {
            Ok(m) => Self(m),
            Err(_) => unreachable_key(),
        }
    }

    fn mac(&self, label: &[u8], words: &[u64]) -> [u8; 32] {
        let mut m = self.0.clone();
        m.update(label);
        for w in words {
            m.update(&w.to_be_bytes());
        }
        m.finalize().into_bytes().into()
    }

    /// The id of place `index` in release `release`.
    pub fn ticket_id(&self, release: u64, index: u32) -> String {
        let tag = self.mac(b"ticket", &[release, u64::from(index)]);
        format!("{release}-{index}-{}", hex::encode(&tag[..8]))
    }

    /// Reads a ticket id back to (release, index) if its tag is right.
    pub fn parse_ticket(&self, id: &str) -> Option<(u64, u32)> {
        let mut parts = id.splitn(3, '-');
        let release: u64 = parts.next()?.parse().ok()?;
        let index: u32 = parts.next()?.parse().ok()?;
        parts.next()?;
        // Only the canonical spelling (no sign, no leading zeros) of an id this key made.
        constant_time_eq(id.as_bytes(), self.ticket_id(release, index).as_bytes())
            .then_some((release, index))
    }

    /// A pass for `account` holding place `index` of `release` until `expires_ms`.
    pub fn pass(&self, release: u64, index: u32, account: u64, expires_ms: u64) -> String {
        let sig = self.mac(b"pass", &[release, u64::from(index), account, expires_ms]);
        format!(
            "KP1.{release}.{index}.{account}.{expires_ms}.{}",
            hex::encode(&sig[..16])
        )
    }

    /// Checks a pass for a booking by `account` in `release` at `now_ms`; returns the place
    /// index it was given for.
    pub fn check_pass(
        &self,
        pass: &str,
        release: u64,
        account: u64,
        now_ms: u64,
    ) -> Result<u32, PassError> {
        let mut parts = pass.split('.');
        if parts.next() != Some("KP1") {
            return Err(PassError::Malformed);
        }
        let mut num = || -> Result<u64, PassError> {
            parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or(PassError::Malformed)
        };
        let (r, index, a, expires) = (num()?, num()?, num()?, num()?);
        parts.next().ok_or(PassError::Malformed)?;
        if parts.next().is_some() {
            return Err(PassError::Malformed);
        }
        let index = u32::try_from(index).map_err(|_| PassError::Malformed)?;
        // Only the canonical spelling of a pass this key signed.
        if !constant_time_eq(pass.as_bytes(), self.pass(r, index, a, expires).as_bytes()) {
            return Err(PassError::BadSignature);
        }
        if r != release {
            return Err(PassError::OtherRelease);
        }
        if a != account {
            return Err(PassError::OtherAccount);
        }
        if now_ms >= expires {
            return Err(PassError::Expired);
        }
        Ok(index)
    }
}

#[cold]
fn unreachable_key() -> ! {
    // `Hmac::new_from_slice` refuses no key length; this cannot be reached.
    std::process::abort()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a pass was refused (all are `403 pass_invalid` to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassError {
    /// Not a pass at all.
    Malformed,
    /// Not signed by this server.
    BadSignature,
    /// For another release.
    OtherRelease,
    /// For another account.
    OtherAccount,
    /// Past its expiry.
    Expired,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_round_trip_and_refuse_a_changed_part() {
        let k = Key::new([3; 32]);
        let id = k.ticket_id(7, 41);
        assert_eq!(k.parse_ticket(&id), Some((7, 41)));
        let tag = id.rsplit('-').next().unwrap_or_default().to_string();
        assert_eq!(k.parse_ticket(&format!("7-42-{tag}")), None);
        assert_eq!(k.parse_ticket(&format!("8-41-{tag}")), None);
        assert_eq!(Key::new([4; 32]).parse_ticket(&id), None);
        assert_eq!(k.parse_ticket("7-41"), None);
        assert_eq!(k.parse_ticket(&id.replacen("7-", "+7-", 1)), None);
        assert_eq!(k.parse_ticket(&id.replacen("-41-", "-041-", 1)), None);
        assert_eq!(k.parse_ticket(""), None);
    }

    #[test]
    fn a_pass_is_bound_to_its_release_account_and_time() {
        let k = Key::new([9; 32]);
        let p = k.pass(5, 3, 1001, 10_000);
        assert_eq!(k.check_pass(&p, 5, 1001, 9_999), Ok(3));
        assert_eq!(k.check_pass(&p, 5, 1001, 10_000), Err(PassError::Expired));
        assert_eq!(k.check_pass(&p, 6, 1001, 0), Err(PassError::OtherRelease));
        assert_eq!(k.check_pass(&p, 5, 1002, 0), Err(PassError::OtherAccount));
        assert_eq!(
            Key::new([8; 32]).check_pass(&p, 5, 1001, 0),
            Err(PassError::BadSignature)
        );
        let forged = p.replace(".1001.", ".1002.");
        assert_eq!(
            k.check_pass(&forged, 5, 1002, 0),
            Err(PassError::BadSignature)
        );
        assert_eq!(k.check_pass("nope", 5, 1001, 0), Err(PassError::Malformed));
        assert_eq!(
            k.check_pass(&p.replacen(".3.", ".03.", 1), 5, 1001, 0),
            Err(PassError::BadSignature)
        );
        assert_eq!(
            k.check_pass(&format!("{p}.x"), 5, 1001, 0),
            Err(PassError::Malformed)
        );
    }
}
