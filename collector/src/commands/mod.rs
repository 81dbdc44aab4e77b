//! The command bodies of `headroom-collector`; `main.rs` parses the command line (`cli.rs`) and dispatches
//! here. `support.rs` holds what they share (`Failure`, the config, the state directory).

pub(crate) mod identity;
pub(crate) mod support;
pub(crate) mod views;
