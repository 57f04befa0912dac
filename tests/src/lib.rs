//! testkit: see tests/README
