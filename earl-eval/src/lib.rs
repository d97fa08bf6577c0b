//! EARL evaluation.
