//! How each [`Strategy`](crate::Strategy) implements the template component (hidden, sealed).

/// Selects the template back end of a strategy. Implemented for both strategies; not for use
/// outside this crate.
pub trait TemplateStrategy {}

impl TemplateStrategy for crate::LockFree {}
impl TemplateStrategy for crate::Blocking {}
