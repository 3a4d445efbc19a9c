//! Errors of the template component: one type per fallible operation.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a template name was refused before touching the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedReason {
    /// The name is empty.
    Empty,
    /// The name contains a NUL byte.
    Nul,
    /// The name contains a backslash (use `/` as the separator).
    Backslash,
    /// The name is absolute (starts with `/`).
    Absolute,
    /// A path segment is `..`, `.` or empty (`a//b`).
    BadSegment,
    /// The file exists but resolves (through a symbolic link) outside its template directory.
    EscapesRoot,
}

impl RefusedReason {
    fn hint(self) -> &'static str {
        match self {
            RefusedReason::Empty => "the name is empty",
            RefusedReason::Nul => "the name contains a NUL byte",
            RefusedReason::Backslash => "the name contains a backslash; use `/` between folders",
            RefusedReason::Absolute => {
                "the name is absolute; give it relative to a template directory"
            }
            RefusedReason::BadSegment => {
                "a segment is `..`, `.` or empty; name the file relative to a template directory without them"
            }
            RefusedReason::EscapesRoot => {
                "the file resolves, through a symbolic link, outside its template directory"
            }
        }
    }
}

/// Why [`FileSystemLoader::load`](super::FileSystemLoader::load) found no source.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The name could escape the template directories, or is malformed.
    Refused {
        /// The name as given.
        name: String,
        /// What was wrong with it.
        reason: RefusedReason,
    },
    /// No directory holds the template (Django's `TemplateDoesNotExist`).
    NotFound {
        /// The name as given.
        name: String,
        /// Every path tried, in search order.
        tried: Vec<PathBuf>,
    },
    /// The file exists but could not be read (permissions, not UTF-8, ...).
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (shared, so the error can be handed to every waiter of a miss).
        source: Arc<io::Error>,
    },
}

impl LoadError {
    /// Whether this is [`LoadError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, LoadError::NotFound { .. })
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Refused { name, reason } => {
                write!(f, "template name {name:?} refused: {}", reason.hint())
            }
            LoadError::NotFound { name, tried } => {
                write!(f, "template {name:?} not found; tried:")?;
                if tried.is_empty() {
                    f.write_str(" nothing (no template directories configured)")?;
                }
                for p in tried {
                    write!(f, " {}", p.display())?;
                }
                Ok(())
            }
            LoadError::Io { path, source } => {
                write!(
                    f,
                    "could not read template file {}: {source}",
                    path.display()
                )
            }
        }
    }
}

impl Error for LoadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// Why [`Reader::get`](super::Reader::get) returned no template.
#[non_exhaustive]
pub enum GetError<C> {
    /// The loader found no source (a [`LoadError::NotFound`] is cached: see the negative
    /// caching notes in the module docs).
    Load(LoadError),
    /// The engine refused the source (not cached: the next lookup compiles again).
    Compile {
        /// The template's name.
        name: String,
        /// The engine's error, shared with every thread that waited on this compile.
        source: Arc<C>,
    },
}

impl<C> Clone for GetError<C> {
    fn clone(&self) -> Self {
        match self {
            GetError::Load(e) => GetError::Load(e.clone()),
            GetError::Compile { name, source } => GetError::Compile {
                name: name.clone(),
                source: Arc::clone(source),
            },
        }
    }
}

impl<C> GetError<C> {
    /// Whether the template does not exist (Django's `TemplateDoesNotExist`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, GetError::Load(e) if e.is_not_found())
    }
}

impl<C: fmt::Debug> fmt::Debug for GetError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Load(e) => f.debug_tuple("Load").field(e).finish(),
            GetError::Compile { name, source } => f
                .debug_struct("Compile")
                .field("name", name)
                .field("source", source)
                .finish(),
        }
    }
}

impl<C: fmt::Display> fmt::Display for GetError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Load(e) => e.fmt(f),
            GetError::Compile { name, source } => {
                write!(
                    f,
                    "template {name:?} does not compile: {source}; fix the source (then call `invalidate` or rely on autoreload)"
                )
            }
        }
    }
}

impl<C: Error + 'static> Error for GetError<C> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GetError::Load(e) => Some(e),
            GetError::Compile { source, .. } => Some(&**source),
        }
    }
}

impl<C> From<LoadError> for GetError<C> {
    fn from(e: LoadError) -> Self {
        GetError::Load(e)
    }
}

/// Why [`Reader::render`](super::Reader::render) produced no output.
#[non_exhaustive]
pub enum RenderError<C, R> {
    /// The template itself could not be found or compiled.
    Get(GetError<C>),
    /// A template it extends or includes could not be found or compiled.
    Dependency {
        /// The template being rendered.
        template: String,
        /// Why the dependency is missing.
        source: GetError<C>,
    },
    /// The engine failed while rendering (undefined variable in strict mode, bad filter
    /// argument, ...).
    Render(R),
    /// The engine kept asking for dependencies that the cache had already loaded (more than
    /// 64 rounds): a concurrent writer kept replacing them; retry.
    Unsettled {
        /// The template being rendered.
        template: String,
    },
}

impl<C: fmt::Debug, R: fmt::Debug> fmt::Debug for RenderError<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Get(e) => f.debug_tuple("Get").field(e).finish(),
            RenderError::Dependency { template, source } => f
                .debug_struct("Dependency")
                .field("template", template)
                .field("source", source)
                .finish(),
            RenderError::Render(e) => f.debug_tuple("Render").field(e).finish(),
            RenderError::Unsettled { template } => f
                .debug_struct("Unsettled")
                .field("template", template)
                .finish(),
        }
    }
}

impl<C: fmt::Display, R: fmt::Display> fmt::Display for RenderError<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Get(e) => e.fmt(f),
            RenderError::Dependency { template, source } => {
                write!(
                    f,
                    "template {template:?} needs a template that failed: {source}"
                )
            }
            RenderError::Render(e) => write!(f, "rendering failed: {e}"),
            RenderError::Unsettled { template } => write!(
                f,
                "template {template:?}: its dependencies kept changing while rendering; retry"
            ),
        }
    }
}

impl<C: Error + 'static, R: Error + 'static> Error for RenderError<C, R> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RenderError::Get(e) => Some(e),
            RenderError::Dependency { source, .. } => Some(source),
            RenderError::Render(e) => Some(e),
            RenderError::Unsettled { .. } => None,
        }
    }
}

/// Why a [`Broadcast`](super::Broadcast) could not connect, subscribe or publish (feature
/// `redis`). Says what went wrong and what to do; the driver's own error types are not part of
/// the API.
#[cfg(feature = "redis")]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The channel name cannot be used: it must be 1 to 256 bytes of printable ASCII without
    /// spaces. Nothing was sent.
    InvalidChannel {
        /// The channel name given.
        channel: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server is unreachable (or the URL is invalid), or the connection broke or timed out
    /// and the retries did not get through. For [`Broadcast::reset`](super::Broadcast::reset)
    /// and [`Broadcast::invalidate`](super::Broadcast::invalidate): the caches this process
    /// follows were already updated, the other processes may not have been told. Retry later
    /// (publishing twice is harmless).
    Connection {
        /// The driver's message.
        message: String,
    },
    /// The server refused the command (an ACL without the pub/sub permission, a server error).
    /// The message is the server's.
    Server {
        /// The server's message.
        message: String,
    },
}

#[cfg(feature = "redis")]
impl BroadcastError {
    /// `true` for the errors a retry later may cure ([`Connection`](Self::Connection)).
    pub fn is_transient(&self) -> bool {
        matches!(self, BroadcastError::Connection { .. })
    }
}

#[cfg(feature = "redis")]
impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::InvalidChannel { channel, reason } => {
                write!(
                    f,
                    "invalid template broadcast channel {channel:?}: {reason}"
                )
            }
            BroadcastError::Connection { message } => write!(
                f,
                "the template broadcast server is unreachable or the connection broke: {message}"
            ),
            BroadcastError::Server { message } => {
                write!(
                    f,
                    "the template broadcast server refused the command: {message}"
                )
            }
        }
    }
}

#[cfg(feature = "redis")]
impl Error for BroadcastError {}
