//! Web glue (feature `axum`): the crate's errors as HTTP responses.
//!
//! * [`model`]: every model conflict error becomes `409 Conflict` with a JSON body saying
//!   which version is current, a missing record `404 Not Found`, storage failures `503` or
//!   `500` (without the database's message).
//!
//! The session layer and extractor live in [`session::axum`](crate::session::axum).

pub mod model;
