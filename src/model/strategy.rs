//! How each [`Strategy`](crate::Strategy) implements the model component (hidden, sealed).

/// Selects the model back end of a strategy. Implemented for both strategies; not for use
/// outside this crate.
pub trait ModelStrategy {}

impl ModelStrategy for crate::LockFree {}
impl ModelStrategy for crate::Blocking {}
