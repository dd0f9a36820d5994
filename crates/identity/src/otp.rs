//! otp
