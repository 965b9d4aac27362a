//! The ObjectOS kernel.
