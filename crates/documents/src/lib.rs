//! Kataar's documents: the appointment slip and the signed vaccination certificate, as PDFs.
//!
//! # Layout
//! - [`pdf`]: [`render_slip`] and [`render_certificate`] take plain data ([`SlipData`],
//!   [`CertificateRecord`]) and a [`Lang`], and return the PDF's bytes; the v1 routes and the
//!   CoWIN v2 routes both call them. [`certificate_payload`] reads a certificate's signed
//!   payload back out of its PDF.
//! - [`sign`]: the compact signed payload a certificate's QR code holds (Ed25519, with the key
//!   id), [`CertificateSigner`] and [`verify`].
//! - `text`: the embedded Noto fonts (SIL OFL 1.1, `fonts/`) and shaped text (rustybuzz), placed
//!   glyph by glyph with krilla so Devanagari conjuncts and vowel signs come out right.
//!
//! **Architecture Invariant:** this crate knows nothing of HTTP, the store or the engine: it
//! turns facts into bytes and checks signatures, and cannot fail on well-formed input except
//! for a payload too long for a QR code.

pub mod pdf;
pub mod sign;
mod text;

pub use pdf::{
    certificate_payload, render_certificate, render_slip, DocumentError, SlipData, SlipPerson,
};
pub use sign::{
    verify, CertificateRecord, CertificateSigner, DoseEntry, PublicKey, SignError, Verified,
};

/// The language a document or message is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Hindi.
    Hi,
}
