//! How each [`Strategy`](crate::Strategy) implements the session component (hidden, sealed).

/// Selects the session back end of a strategy. Implemented for both strategies; not for use
/// outside this crate.
pub trait SessionStrategy {}

impl SessionStrategy for crate::LockFree {}
impl SessionStrategy for crate::Blocking {}
