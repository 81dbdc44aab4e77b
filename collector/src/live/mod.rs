//! The live fleet: every connected host's newest sample and status, and the per group × zone summary
//! computed from it. Pure: time comes in as an argument.

pub mod fleet;
pub mod summary;
