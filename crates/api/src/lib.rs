//! kataar-api
