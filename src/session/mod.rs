//! Session component (work in progress: see the issue tracker).

#[doc(hidden)]
pub mod strategy;
