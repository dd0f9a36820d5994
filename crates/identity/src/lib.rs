//! kataar-identity: the identity pieces of citizens and operators, with no HTTP in them.
//!
//! # Layout
//!
//! - [`photo_id`]: the seven photo-ID types (v1 names, CoWIN names and ids), normalisation,
//!   validation (Aadhaar's Verhoeff check digit) and masking.
//! - [`person_key`]: the person key, HMAC-SHA256 of a normalised ID; what the store deduplicates on.
//! - [`mobile`]: Indian mobile numbers, normalised and masked.
//! - [`otp`]: the in-memory, bounded OTP manager (request, claim and verify, also by SHA-256,
//!   purge),
//!   with the resend cooldown and per-mobile hourly and daily caps; time is passed in.
//! - [`sender`]: how OTPs leave (`log`, `file:PATH`, `webhook:URL`), off the request path
//!   through a bounded queue.
//! - [`token`]: citizens' bearer tokens (JWT HS256) and a signed-blob primitive.
//! - [`operator_key`]: operator API keys (`kop_…`), generated and hashed.
//! - [`secrets`]: the server secrets, from configuration or generated once into the data directory.
//!
//! This crate owns the rules for identity values and the secrets that key them. It must never
//! log, return in an error, or hand to storage a clear photo-ID number, OTP, token, operator key
//! or secret (every type holding one has a redacted `Debug`); the only place an OTP is written in
//! clear is the configured OTP sender. It knows nothing of HTTP routing or of the store.

pub mod mobile;
pub mod operator_key;
pub mod otp;
pub mod person_key;
pub mod photo_id;
pub mod secrets;
pub mod sender;
pub mod token;

pub use mobile::{normalize_mobile, Mobile, MobileError};
pub use operator_key::{
    generate_operator_key, hash_operator_key, looks_like_operator_key, ClearOperatorKey,
};
pub use otp::{OtpClaim, OtpConfig, OtpError, OtpIssued, OtpManager, SixDigits, VerifiedMobile};
pub use person_key::{person_key_from_hex, person_key_to_hex, PersonKey, PersonKeyer};
pub use photo_id::{normalize_and_validate, IdType, NormalizedId, PhotoIdError};
pub use secrets::{derive_key, SecretOverrides, Secrets, SecretsError};
pub use sender::{
    DispatcherConfig, OtpDispatcher, OtpMessage, OtpSenderSpec, SenderError, SenderStats,
    WebhookSecret,
};
pub use token::{AccountId, Claims, Issued, TokenError, TokenSigner};
