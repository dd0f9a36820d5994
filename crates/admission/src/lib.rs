//! kataar-admission
