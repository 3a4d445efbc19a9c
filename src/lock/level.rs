//! The five lock levels and their order.

use std::fmt;

/// The five lock levels, ordered from coarse to fine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// One lock for the whole process.
    Global,
    /// One lock per module path.
    Module,
    /// One lock per type.
    Class,
    /// One lock per live object.
    Instance,
    /// One lock per function or call site.
    Function,
}

impl Level {
    /// Every level, from coarse to fine.
    pub const ALL: [Level; 5] = [
        Level::Global,
        Level::Module,
        Level::Class,
        Level::Instance,
        Level::Function,
    ];

    /// A lowercase name: `"global"`, `"module"`, …
    pub const fn name(self) -> &'static str {
        match self {
            Level::Global => "global",
            Level::Module => "module",
            Level::Class => "class",
            Level::Instance => "instance",
            Level::Function => "function",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}
