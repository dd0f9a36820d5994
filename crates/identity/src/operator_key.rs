//! operator_key
