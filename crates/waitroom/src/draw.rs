//! The draw that orders a release's pre-queue, and its check.
//!
//! The algorithm (`ALGORITHM`), written so that anyone can recompute it with nothing but SHA-256:
//!
//! 1. When the release is created the server draws a 32-byte `secret` and publishes
//!    `commitment = SHA-256(secret)` (hex).
//! 2. At the opening the pre-queue closes. Its ticket ids (ASCII strings) are sorted bytewise;
//!    `list_hash = SHA-256(id_1 ‖ "\n" ‖ id_2 ‖ "\n" ‖ … ‖ id_n ‖ "\n")`.
//! 3. `seed = SHA-256(secret ‖ list_hash)` (both as 32 raw bytes).
//! 4. The generator is SHA-256 in counter mode: block `k` (k = 0, 1, …) is
//!    `SHA-256(seed ‖ k as 8 bytes big-endian)`; each block yields four 64-bit words, read
//!    big-endian, in order.
//! 5. A uniform integer below `n` takes words until one is below `2^64 − (2^64 mod n)`, and is
//!    that word mod `n` (rejection, so there is no modulo bias).
//! 6. Fisher–Yates on the sorted list: for `i` from `n − 1` down to 1, `j` = uniform below
//!    `i + 1`, swap items `i` and `j`. The result is the admission order of the pre-queue;
//!    tickets taken after the opening follow it in arrival order.

use sha2::{Digest, Sha256};

/// The name of the algorithm above, published with every draw.
pub const ALGORITHM: &str =
    "kataar-draw-v1: seed = SHA-256(secret || SHA-256(sorted ids, each + \"\\n\")); \
     generator = SHA-256(seed || u64 counter big-endian), four big-endian u64 words per block; \
     uniform below n by rejection; Fisher-Yates from the last item down";

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The published commitment to a release's secret.
pub fn commitment(secret: &[u8; 32]) -> [u8; 32] {
    sha256(secret)
}

/// SHA-256 over the sorted ids, each followed by a newline. `sorted` must already be sorted.
pub fn list_hash<S: AsRef<str>>(sorted: &[S]) -> [u8; 32] {
    let mut h = Sha256::new();
    for id in sorted {
        h.update(id.as_ref().as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

/// The shuffle's seed from the secret and the sorted pre-queue.
pub fn seed(secret: &[u8; 32], list_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(list_hash);
    h.finalize().into()
}

/// SHA-256 in counter mode: four big-endian 64-bit words per block.
pub struct Generator {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl Generator {
    /// A generator from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            counter: 0,
            block: [0; 32],
            used: 4,
        }
    }

    /// The next 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        if self.used == 4 {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_be_bytes());
            self.block = h.finalize().into();
            self.counter += 1;
            self.used = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.block[self.used * 8..self.used * 8 + 8]);
        self.used += 1;
        u64::from_be_bytes(word)
    }

    /// A uniform integer in `0..n` (`n` ≥ 1), by rejection.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let n = n.max(1);
        // 2^64 mod n: the words at or above 2^64 − r would make the low residues more likely.
        let r = (u64::MAX % n + 1) % n;
        loop {
            let w = self.next_u64();
            if r == 0 || w < 0u64.wrapping_sub(r) {
                return w % n;
            }
        }
    }
}

/// Fisher–Yates over `items` with the generator seeded by `seed`.
pub fn shuffle<T>(items: &mut [T], seed: [u8; 32]) {
    let mut g = Generator::new(seed);
    for i in (1..items.len()).rev() {
        let j = g.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The admission order of a pre-queue: its ids sorted, then shuffled by the seed derived from
/// `secret`. Returns (sorted ids, order).
pub fn draw(secret: &[u8; 32], mut ids: Vec<String>) -> (Vec<String>, Vec<String>) {
    ids.sort_unstable();
    let seed = seed(secret, &list_hash(&ids));
    let mut order = ids.clone();
    shuffle(&mut order, seed);
    (ids, order)
}

/// What checking a published draw found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The secret matches the commitment and the order is the one the algorithm gives.
    Matches,
    /// SHA-256 of the published secret is not the commitment.
    CommitmentMismatch,
    /// The published ticket list is not sorted or has a duplicate.
    ListNotSorted,
    /// The published order differs from the recomputed one, first at this rank (0-based).
    OrderMismatch { rank: usize },
}

/// Checks a published draw: the secret against the commitment, the list's shape, and the order
/// against the one recomputed from them.
pub fn verify(
    commitment_hex: &str,
    secret: &[u8; 32],
    tickets: &[String],
    order: &[String],
) -> Verdict {
    if hex::encode(commitment(secret)) != commitment_hex.to_ascii_lowercase() {
        return Verdict::CommitmentMismatch;
    }
    if tickets.windows(2).any(|w| w[0] >= w[1]) {
        return Verdict::ListNotSorted;
    }
    let seed = seed(secret, &list_hash(tickets));
    let mut expected = tickets.to_vec();
    shuffle(&mut expected, seed);
    let len = expected.len().max(order.len());
    for rank in 0..len {
        if expected.get(rank) != order.get(rank) {
            return Verdict::OrderMismatch { rank };
        }
    }
    Verdict::Matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_never_reaches_its_bound_and_covers_it() {
        let mut g = Generator::new([7; 32]);
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            let v = g.below(5);
            assert!(v < 5);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(g.below(1), 0);
    }

    #[test]
    fn the_generator_is_sha256_in_counter_mode() {
        let seed = [1u8; 32];
        let mut g = Generator::new(seed);
        let mut block0 = Vec::from(seed);
        block0.extend_from_slice(&0u64.to_be_bytes());
        let d = sha256(&block0);
        let first = u64::from_be_bytes(d[..8].try_into().unwrap_or_default());
        let fourth = u64::from_be_bytes(d[24..].try_into().unwrap_or_default());
        assert_eq!(g.next_u64(), first);
        g.next_u64();
        g.next_u64();
        assert_eq!(g.next_u64(), fourth);
        let mut block1 = Vec::from(seed);
        block1.extend_from_slice(&1u64.to_be_bytes());
        let d1 = sha256(&block1);
        assert_eq!(
            g.next_u64(),
            u64::from_be_bytes(d1[..8].try_into().unwrap_or_default())
        );
    }
}
