//! The spec audit: every problem of a manifest or metadata file, located.
