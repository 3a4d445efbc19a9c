//! How each [`Strategy`](crate::Strategy) implements the template component (hidden, sealed).

use super::cache::{Backend, BlockingBackend, LockFreeBackend};
use super::engine::Engine;

/// Selects the template back end of a strategy. Implemented for both strategies; not for use
/// outside this crate.
pub trait TemplateStrategy {
    /// The back end storing compiled templates of engine `E`.
    type Backend<E: Engine>: Backend<E>;
}

impl TemplateStrategy for crate::LockFree {
    type Backend<E: Engine> = LockFreeBackend<E>;
}

impl TemplateStrategy for crate::Blocking {
    type Backend<E: Engine> = BlockingBackend<E>;
}
