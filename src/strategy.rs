//! The strategy vocabulary: how a component synchronises.
//!
//! Every component of the crate (template cache, session store, model store) takes a strategy
//! as a type parameter with a default, the way `arc-swap` takes its `Strategy` and `lock_api`
//! its raw lock:
//!
//! * [`LockFree`] (the default): readers never block and never write shared memory on the hit
//!   path; writers publish with compare-and-swap (arc-swap snapshots, flurry bins, versioned
//!   records).
//! * [`Blocking`]: the same public API, implemented with the reentrant locks of
//!   [`crate::lock`] at the level the Django threading spec proposed for that component. Pick it
//!   when writes dominate, when you want the simplest mental model, or to compare.
//!
//! The trait is sealed: the set of strategies is part of the crate's design, and the component
//! back ends are selected through hidden supertraits that may change between releases.
//!
//! ```
//! use unlocked::{Blocking, LockFree, Strategy, StrategyKind};
//!
//! fn describe<S: Strategy>() -> &'static str {
//!     S::KIND.name()
//! }
//! assert_eq!(describe::<LockFree>(), "lock-free");
//! assert_eq!(describe::<Blocking>(), "blocking");
//! assert_eq!(StrategyKind::ALL.len(), 2);
//! ```

use std::fmt;

use crate::model::Model;
use crate::model::backend::ModelStrategy;
use crate::session::backend::SessionStrategy;
use crate::template::Engine;
use crate::template::backend::TemplateStrategy;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::LockFree {}
    impl Sealed for super::Blocking {}
}

/// How a component synchronises: [`LockFree`] or [`Blocking`]. Sealed.
///
/// Generic code can be written over `S: Strategy` and instantiated for both (this crate's
/// tests run every scenario once per strategy through a macro in `tests/common`).
pub trait Strategy:
    sealed::Sealed
    + TemplateStrategy
    + SessionStrategy
    + ModelStrategy
    + Copy
    + Default
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Which strategy this is, as a value.
    const KIND: StrategyKind;
}

/// The default strategy: readers never block, writers publish with compare-and-swap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LockFree;

/// The blocking fallback: the same API, implemented with [`crate::lock`]'s reentrant locks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Blocking;

impl Strategy for LockFree {
    const KIND: StrategyKind = StrategyKind::LockFree;
}

impl Strategy for Blocking {
    const KIND: StrategyKind = StrategyKind::Blocking;
}

// The back end of each component under each strategy. Here, not in the components' `backend`
// modules: a back-end module then never names a strategy, so `strategy` → `*::backend` is the
// only edge between them and the module graph has no circle.
impl TemplateStrategy for LockFree {
    type Backend<E: Engine> = crate::template::backend::lock_free::LockFreeBackend<E>;
}

impl TemplateStrategy for Blocking {
    type Backend<E: Engine> = crate::template::backend::blocking::BlockingBackend<E>;
}

impl SessionStrategy for LockFree {
    type Backend = crate::session::backend::lock_free::LockFreeBackend;
}

impl SessionStrategy for Blocking {
    type Backend = crate::session::backend::blocking::BlockingBackend;
}

impl ModelStrategy for LockFree {
    type Backend<M: Model> = crate::model::backend::lock_free::LockFreeBackend<M>;
}

impl ModelStrategy for Blocking {
    type Backend<M: Model> = crate::model::backend::blocking::BlockingBackend<M>;
}

/// A strategy as a runtime value (for reports, configuration and command-line flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StrategyKind {
    /// [`LockFree`].
    LockFree,
    /// [`Blocking`].
    Blocking,
}

impl StrategyKind {
    /// Every strategy, in a fixed order.
    pub const ALL: &'static [StrategyKind] = &[StrategyKind::LockFree, StrategyKind::Blocking];

    /// A short lowercase name: `"lock-free"` or `"blocking"`.
    pub const fn name(self) -> &'static str {
        match self {
            StrategyKind::LockFree => "lock-free",
            StrategyKind::Blocking => "blocking",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for StrategyKind {
    type Err = ParseStrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lock-free" | "lockfree" | "lock_free" => Ok(StrategyKind::LockFree),
            "blocking" => Ok(StrategyKind::Blocking),
            _ => Err(ParseStrategyError {
                input: s.to_owned(),
            }),
        }
    }
}

/// A strategy name that is neither `lock-free` nor `blocking`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseStrategyError {
    /// What was given.
    pub input: String,
}

impl fmt::Display for ParseStrategyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown strategy `{}`: expected `lock-free` or `blocking`",
            self.input
        )
    }
}

impl std::error::Error for ParseStrategyError {}
