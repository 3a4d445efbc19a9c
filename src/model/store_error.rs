//! [`StoreError`]: what goes wrong in a model store kept outside the process (a database),
//! beside the conflicts that every store reports.

use std::error::Error;
use std::fmt;

/// A failure of the storage itself, reported by a remote model store such as
/// `PgModelStore` (feature `postgres`). The in-memory [`ModelStore`](super::ModelStore) never
/// returns it.
///
/// It names no type of the database driver, so the back end can change without breaking
/// callers; the driver's message is kept as text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// A table name that is not a plain lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most
    /// 63 bytes). Nothing was sent to the database.
    InvalidTableName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database could not be reached, or the connection broke, and the store's own
    /// reconnect attempts did not succeed. Nothing was changed by this call.
    Connection {
        /// The driver's message.
        message: String,
    },
    /// The connection broke while a write was in flight and the store could not find out
    /// whether the write committed (another writer changed the record meanwhile). Re-read the
    /// record before deciding again. Writes that returned `Ok` are never in doubt.
    InDoubt {
        /// The table.
        table: String,
        /// The primary key of the record (for a multi-record commit: the first one; for an
        /// insert: 0).
        pk: u64,
        /// The driver's message.
        message: String,
    },
    /// The database refused a statement (a constraint, a missing table before `migrate`, a
    /// value PostgreSQL cannot store such as `\u0000` in a JSON string).
    Database {
        /// The SQLSTATE code, if the server sent one (e.g. `42P01`: no such table).
        code: Option<String>,
        /// The server's message.
        message: String,
    },
    /// A stored record does not decode as the model type (edited by hand, written by another
    /// program, or the model changed shape): the record is left as it is.
    Corrupt {
        /// The table.
        table: String,
        /// The primary key of the record.
        pk: u64,
        /// What did not decode.
        message: String,
    },
    /// The value could not be serialised (e.g. a map with non-string keys, a NaN float).
    /// Nothing was sent to the database.
    Encode {
        /// The serialiser's message.
        message: String,
    },
}

impl StoreError {
    /// Whether the error comes from the connection (unreachable, broken, or a write in doubt),
    /// not from the data or the request: worth retrying later.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            StoreError::Connection { .. } | StoreError::InDoubt { .. }
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InvalidTableName { name, reason } => {
                write!(f, "invalid table name `{name}`: {reason}")
            }
            StoreError::Connection { message } => {
                write!(
                    f,
                    "the database is unreachable or the connection broke: {message}"
                )
            }
            StoreError::InDoubt { table, pk, message } => write!(
                f,
                "the connection broke during a write to record {pk} of table `{table}` and it is \
                 unknown whether the write committed ({message}); re-read the record"
            ),
            StoreError::Database {
                code: Some(code),
                message,
            } => write!(f, "the database refused the statement ({code}): {message}"),
            StoreError::Database {
                code: None,
                message,
            } => write!(f, "the database refused the statement: {message}"),
            StoreError::Corrupt { table, pk, message } => write!(
                f,
                "record {pk} of table `{table}` does not decode as the model type: {message}"
            ),
            StoreError::Encode { message } => {
                write!(f, "the value could not be serialised: {message}")
            }
        }
    }
}

impl Error for StoreError {}
