//! kataar-domain
