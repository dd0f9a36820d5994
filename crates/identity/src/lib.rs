//! kataar-identity
