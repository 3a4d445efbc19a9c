//! The file-system loader: template names to sources, over several directories in order.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::error::{LoadError, RefusedReason};

/// A template's source as read from disk.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Source {
    /// The template text.
    pub text: String,
    /// The file it came from (canonical path).
    pub path: PathBuf,
    /// Modification time and length when read (what autoreload compares).
    pub stamp: Stamp,
}

/// What autoreload compares: modification time and length of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    #[cfg(all(test, unlocked_loom))]
    pub(crate) const ZERO: Stamp = Stamp {
        modified: None,
        len: 0,
    };

    /// The stamp of the file at `path` now, or `None` if it cannot be read.
    pub fn of(path: &Path) -> Option<Stamp> {
        let meta = fs::metadata(path).ok()?;
        Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// Finds template sources in several directories, first match wins (Django's `DIRS`).
///
/// Names use `/` as the separator and are relative to each directory. Names that could
/// escape the directories are refused with [`LoadError::Refused`]: empty names, NUL bytes,
/// backslashes, absolute names, `..`, `.` and empty segments, and files that resolve through a
/// symbolic link outside the directory they were found in. A missing template is a
/// [`LoadError::NotFound`] listing every path tried.
///
/// ```
/// use unlocked::template::FileSystemLoader;
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("hello.html"), "Hello")?;
/// let loader = FileSystemLoader::new([dir.path()]);
/// assert_eq!(loader.load("hello.html")?.text, "Hello");
/// assert!(loader.load("../etc/passwd").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct FileSystemLoader {
    dirs: Vec<PathBuf>,
}

impl FileSystemLoader {
    /// A loader searching `dirs` in order. Directories that do not exist are searched (and
    /// listed in [`LoadError::NotFound`]) but never match.
    pub fn new<I, P>(dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        Self {
            dirs: dirs.into_iter().map(|d| d.as_ref().to_path_buf()).collect(),
        }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Checks `name` without touching the file system.
    pub fn check_name(name: &str) -> Result<(), LoadError> {
        let refuse = |reason| {
            Err(LoadError::Refused {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() {
            return refuse(RefusedReason::Empty);
        }
        if name.contains('\0') {
            return refuse(RefusedReason::Nul);
        }
        if name.contains('\\') {
            return refuse(RefusedReason::Backslash);
        }
        if name.starts_with('/') || Path::new(name).is_absolute() {
            return refuse(RefusedReason::Absolute);
        }
        if name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return refuse(RefusedReason::BadSegment);
        }
        Ok(())
    }

    /// Reads the source of `name` from the first directory that has it.
    pub fn load(&self, name: &str) -> Result<Source, LoadError> {
        Self::check_name(name)?;
        let mut tried = Vec::with_capacity(self.dirs.len());
        for dir in &self.dirs {
            let candidate = dir.join(name);
            let real = match fs::canonicalize(&candidate) {
                Ok(real) => real,
                Err(e) if is_absent(&e) => {
                    tried.push(candidate);
                    continue;
                }
                Err(e) => {
                    return Err(LoadError::Io {
                        path: candidate,
                        source: Arc::new(e),
                    });
                }
            };
            // The directory exists (the candidate resolved inside or through it).
            let root = fs::canonicalize(dir).map_err(|e| LoadError::Io {
                path: dir.clone(),
                source: Arc::new(e),
            })?;
            if !real.starts_with(&root) {
                return Err(LoadError::Refused {
                    name: name.to_owned(),
                    reason: RefusedReason::EscapesRoot,
                });
            }
            if real.is_dir() {
                tried.push(candidate);
                continue;
            }
            // Stamp before reading: a write racing with the read changes the stamp later, so
            // autoreload notices it.
            let stamp = Stamp::of(&real).unwrap_or(Stamp {
                modified: None,
                len: 0,
            });
            let text = fs::read_to_string(&real).map_err(|e| LoadError::Io {
                path: real.clone(),
                source: Arc::new(e),
            })?;
            return Ok(Source {
                text,
                path: real,
                stamp,
            });
        }
        Err(LoadError::NotFound {
            name: name.to_owned(),
            tried,
        })
    }
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
