//! kataar-store
