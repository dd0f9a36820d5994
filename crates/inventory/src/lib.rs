//! kataar-inventory
