//! The `getRecaptcha` captcha: an SVG of 5 glyphs drawn as jittered strokes over noise, and
//! the answers kept per account until `schedule` checks them.
//!
//! Glyphs come from [`ALPHABET`] (no `0`/`O`, `1`/`I` look-alikes); answers are compared
//! without regard to case. An answer lives [`CAPTCHA_TTL_S`] and is used up by one check,
//! right or wrong; a new captcha replaces the account's previous one. At most
//! [`CAPTCHAS_MAX`] answers are kept: at the bound expired ones are dropped, and if none
//! had expired every answer is dropped (those clients ask for a new captcha).

use kataar_domain::AccountId;
use parking_lot::Mutex;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Glyphs a captcha is drawn from.
pub const ALPHABET: &str = "23456789ACEFHKLMNPRTWXY";
/// Glyphs per captcha.
pub const CAPTCHA_GLYPHS: usize = 5;
/// How long a captcha's answer is accepted, in seconds.
pub const CAPTCHA_TTL_S: u64 = 300;
/// Captcha answers kept at most (one per account).
pub const CAPTCHAS_MAX: usize = 100_000;

type Stroke = &'static [(f32, f32)];

/// Each glyph as polylines on a 4 × 6 grid.
fn strokes(c: char) -> &'static [Stroke] {
    match c {
        '2' => &[&[
            (0.0, 1.0),
            (1.0, 0.0),
            (3.0, 0.0),
            (4.0, 1.0),
            (4.0, 2.0),
            (0.0, 6.0),
            (4.0, 6.0),
        ]],
        '3' => &[&[
            (0.0, 0.0),
            (4.0, 0.0),
            (2.0, 2.5),
            (4.0, 3.5),
            (4.0, 5.0),
            (3.0, 6.0),
            (1.0, 6.0),
            (0.0, 5.0),
        ]],
        '4' => &[&[(3.0, 6.0), (3.0, 0.0), (0.0, 4.0), (4.0, 4.0)]],
        '5' => &[&[
            (4.0, 0.0),
            (0.0, 0.0),
            (0.0, 2.5),
            (3.0, 2.5),
            (4.0, 3.5),
            (4.0, 5.0),
            (3.0, 6.0),
            (0.0, 6.0),
        ]],
        '6' => &[&[
            (4.0, 0.0),
            (1.0, 0.0),
            (0.0, 1.5),
            (0.0, 5.0),
            (1.0, 6.0),
            (3.0, 6.0),
            (4.0, 5.0),
            (4.0, 3.5),
            (3.0, 2.5),
            (0.0, 2.5),
        ]],
        '7' => &[&[(0.0, 0.0), (4.0, 0.0), (1.5, 6.0)]],
        '8' => &[&[
            (1.0, 0.0),
            (3.0, 0.0),
            (4.0, 1.0),
            (4.0, 2.0),
            (3.0, 3.0),
            (1.0, 3.0),
            (0.0, 4.0),
            (0.0, 5.0),
            (1.0, 6.0),
            (3.0, 6.0),
            (4.0, 5.0),
            (4.0, 4.0),
            (3.0, 3.0),
            (1.0, 3.0),
            (0.0, 2.0),
            (0.0, 1.0),
            (1.0, 0.0),
        ]],
        '9' => &[&[
            (4.0, 3.5),
            (1.0, 3.5),
            (0.0, 2.5),
            (0.0, 1.0),
            (1.0, 0.0),
            (3.0, 0.0),
            (4.0, 1.0),
            (4.0, 5.0),
            (3.0, 6.0),
            (0.0, 6.0),
        ]],
        'A' => &[
            &[(0.0, 6.0), (2.0, 0.0), (4.0, 6.0)],
            &[(1.0, 3.5), (3.0, 3.5)],
        ],
        'C' => &[&[
            (4.0, 0.5),
            (3.0, 0.0),
            (1.0, 0.0),
            (0.0, 1.0),
            (0.0, 5.0),
            (1.0, 6.0),
            (3.0, 6.0),
            (4.0, 5.5),
        ]],
        'E' => &[
            &[(4.0, 0.0), (0.0, 0.0), (0.0, 6.0), (4.0, 6.0)],
            &[(0.0, 3.0), (3.0, 3.0)],
        ],
        'F' => &[
            &[(4.0, 0.0), (0.0, 0.0), (0.0, 6.0)],
            &[(0.0, 3.0), (3.0, 3.0)],
        ],
        'H' => &[
            &[(0.0, 0.0), (0.0, 6.0)],
            &[(4.0, 0.0), (4.0, 6.0)],
            &[(0.0, 3.0), (4.0, 3.0)],
        ],
        'K' => &[
            &[(0.0, 0.0), (0.0, 6.0)],
            &[(4.0, 0.0), (0.0, 3.5)],
            &[(1.3, 2.6), (4.0, 6.0)],
        ],
        'L' => &[&[(0.0, 0.0), (0.0, 6.0), (4.0, 6.0)]],
        'M' => &[&[(0.0, 6.0), (0.0, 0.0), (2.0, 3.0), (4.0, 0.0), (4.0, 6.0)]],
        'N' => &[&[(0.0, 6.0), (0.0, 0.0), (4.0, 6.0), (4.0, 0.0)]],
        'P' => &[&[
            (0.0, 6.0),
            (0.0, 0.0),
            (3.0, 0.0),
            (4.0, 1.0),
            (4.0, 2.0),
            (3.0, 3.0),
            (0.0, 3.0),
        ]],
        'R' => &[
            &[
                (0.0, 6.0),
                (0.0, 0.0),
                (3.0, 0.0),
                (4.0, 1.0),
                (4.0, 2.0),
                (3.0, 3.0),
                (0.0, 3.0),
            ],
            &[(2.0, 3.0), (4.0, 6.0)],
        ],
        'T' => &[&[(0.0, 0.0), (4.0, 0.0)], &[(2.0, 0.0), (2.0, 6.0)]],
        'W' => &[&[(0.0, 0.0), (1.0, 6.0), (2.0, 2.0), (3.0, 6.0), (4.0, 0.0)]],
        'X' => &[&[(0.0, 0.0), (4.0, 6.0)], &[(4.0, 0.0), (0.0, 6.0)]],
        _ => &[
            &[(0.0, 0.0), (2.0, 3.0), (4.0, 0.0)],
            &[(2.0, 3.0), (2.0, 6.0)],
        ],
    }
}

/// A new captcha: (its answer, the SVG).
pub fn draw() -> (String, String) {
    let mut rng = rand::thread_rng();
    let glyphs: Vec<char> = ALPHABET.chars().collect();
    let answer: String = (0..CAPTCHA_GLYPHS)
        .map(|_| glyphs[rng.gen_range(0..glyphs.len())])
        .collect();
    let (w, h) = (150.0_f32, 50.0_f32);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0,0,{w},{h}\">"
    );
    let _ = write!(
        svg,
        "<rect width=\"100%\" height=\"100%\" fill=\"#f4f4f4\"/>"
    );
    for _ in 0..40 {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{:.1}\" fill=\"#{:06x}\"/>",
            rng.gen_range(0.0..w),
            rng.gen_range(0.0..h),
            rng.gen_range(0.5..1.8),
            rng.gen_range(0x40_4040..0xa0_a0a0u32)
        );
    }
    for (i, c) in answer.chars().enumerate() {
        let scale = rng.gen_range(4.5..6.0_f32);
        let x0 = 12.0 + i as f32 * 27.0 + rng.gen_range(-3.0..3.0);
        let y0 = 8.0 + rng.gen_range(-3.0..3.0);
        let angle = rng.gen_range(-18.0..18.0_f32);
        let colour = rng.gen_range(0x10_1010..0x70_7070u32);
        let _ = write!(
            svg,
            "<g transform=\"rotate({angle:.1} {:.1} {:.1})\" fill=\"none\" stroke=\"#{colour:06x}\" stroke-width=\"{:.1}\" stroke-linecap=\"round\" stroke-linejoin=\"round\">",
            x0 + 2.0 * scale,
            y0 + 3.0 * scale,
            rng.gen_range(2.0..3.2)
        );
        for stroke in strokes(c) {
            let mut d = String::new();
            for (j, (x, y)) in stroke.iter().enumerate() {
                let px = x0 + x * scale + rng.gen_range(-0.6..0.6);
                let py = y0 + y * scale + rng.gen_range(-0.6..0.6);
                let _ = write!(d, "{}{px:.1} {py:.1}", if j == 0 { "M" } else { " L" });
            }
            let _ = write!(svg, "<path d=\"{d}\"/>");
        }
        svg.push_str("</g>");
    }
    for _ in 0..5 {
        let _ = write!(
            svg,
            "<path d=\"M{:.1} {:.1} C{:.1} {:.1},{:.1} {:.1},{:.1} {:.1}\" stroke=\"#{:06x}\" stroke-width=\"{:.1}\" fill=\"none\"/>",
            rng.gen_range(0.0..20.0),
            rng.gen_range(0.0..h),
            rng.gen_range(20.0..70.0),
            rng.gen_range(0.0..h),
            rng.gen_range(70.0..130.0),
            rng.gen_range(0.0..h),
            rng.gen_range(130.0..w),
            rng.gen_range(0.0..h),
            rng.gen_range(0x30_3030..0x90_9090u32),
            rng.gen_range(0.8..1.8)
        );
    }
    svg.push_str("</svg>");
    (answer, svg)
}

fn digest(answer: &str) -> [u8; 32] {
    Sha256::digest(answer.trim().to_ascii_uppercase().as_bytes()).into()
}

/// The captcha answers waiting for a `schedule`, by account.
#[derive(Default)]
pub struct Captchas {
    answers: Mutex<HashMap<AccountId, ([u8; 32], Instant)>>,
}

impl Captchas {
    /// Keeps `answer` as the account's captcha (replacing an earlier one).
    pub fn remember(&self, account: AccountId, answer: &str, now: Instant) {
        let mut answers = self.answers.lock();
        if answers.len() >= CAPTCHAS_MAX && !answers.contains_key(&account) {
            answers.retain(|_, (_, until)| *until > now);
            if answers.len() >= CAPTCHAS_MAX {
                answers.clear();
            }
        }
        let until = now + Duration::from_secs(CAPTCHA_TTL_S);
        answers.insert(account, (digest(answer), until));
    }

    /// Whether `given` answers the account's live captcha; the captcha is used up either way.
    pub fn check(&self, account: AccountId, given: &str, now: Instant) -> bool {
        let Some((want, until)) = self.answers.lock().remove(&account) else {
            return false;
        };
        until > now && digest(given) == want
    }

    /// Answers kept.
    pub fn len(&self) -> usize {
        self.answers.lock().len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captcha_has_five_glyphs_and_noise() {
        let (answer, svg) = draw();
        assert_eq!(answer.chars().count(), CAPTCHA_GLYPHS);
        assert!(answer.chars().all(|c| ALPHABET.contains(c)));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<g ").count(), CAPTCHA_GLYPHS);
        assert!(svg.matches("<circle").count() >= 40);
        assert!(
            !svg.contains(&answer),
            "the answer is not in the SVG as text"
        );
    }

    #[test]
    fn answers_are_checked_once_case_blind_and_expire() {
        let c = Captchas::default();
        let now = Instant::now();
        let a = AccountId(1);
        c.remember(a, "AB3CD", now);
        assert!(c.check(a, "ab3cd", now));
        assert!(!c.check(a, "AB3CD", now), "used up");
        c.remember(a, "AB3CD", now);
        assert!(!c.check(a, "WRONG", now));
        assert!(!c.check(a, "AB3CD", now), "a wrong try uses it up");
        c.remember(a, "AB3CD", now);
        let late = now + Duration::from_secs(CAPTCHA_TTL_S + 1);
        assert!(!c.check(a, "AB3CD", late));
    }
}
