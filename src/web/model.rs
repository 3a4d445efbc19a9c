//! Model errors as responses: `impl IntoResponse` for [`SaveError`], [`UpdateError`],
//! [`DeleteError`], [`CommitError`] and [`StoreError`], for the in-memory and the PostgreSQL
//! stores alike.
//!
//! | error | status | body (`application/json`) |
//! | --- | --- | --- |
//! | a conflict (`Conflict`, `RetriesExhausted`) | 409 | `error`, `pk`, `expected_version`, `current_version` (`null` if deleted), `message` |
//! | `NotFound` | 404 | `error`, `pk`, `message` |
//! | `Panicked`, `DuplicatePk`, corrupt data, a refused statement | 500 | `error` only |
//! | the database unreachable or a write in doubt | 503 | `error` only |
//!
//! Server-side failures say nothing of the database to the client: log the error before
//! converting it if you need the details.
//!
//! ```
//! use axum::response::IntoResponse;
//! use unlocked::model::{Model, ModelStore};
//!
//! #[derive(Clone, Debug)]
//! struct Article { title: String }
//! impl Model for Article {
//!     const APP_LABEL: &'static str = "blog";
//!     const NAME: &'static str = "Article";
//! }
//!
//! let store: ModelStore<Article> = ModelStore::new();
//! let read = store.insert(Article { title: "Hello".into() });
//! store.update(read.pk(), |a| a.title.push('!')).unwrap();
//! // A save of what was read earlier: the handler can return the error as it is.
//! let response = store.save(read.edit()).unwrap_err().into_response();
//! assert_eq!(response.status(), 409);
//! assert_eq!(store.update(99, |_| ()).unwrap_err().into_response().status(), 404);
//! ```

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::model::{CommitError, DeleteError, SaveError, StoreError, UpdateError};

fn respond(status: StatusCode, body: Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn conflict(pk: u64, expected: u64, current: Option<u64>, message: String) -> Response {
    respond(
        StatusCode::CONFLICT,
        json!({
            "error": "conflict",
            "pk": pk,
            "expected_version": expected,
            "current_version": current,
            "message": message,
        }),
    )
}

fn not_found(pk: u64, message: String) -> Response {
    respond(
        StatusCode::NOT_FOUND,
        json!({ "error": "not_found", "pk": pk, "message": message }),
    )
}

fn internal(error: &str) -> Response {
    respond(StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": error }))
}

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        match self {
            StoreError::Connection { .. } => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "storage_unavailable" }),
            ),
            StoreError::InDoubt { .. } => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "outcome_unknown" }),
            ),
            StoreError::Corrupt { .. } => internal("corrupt_record"),
            _ => internal("storage_error"),
        }
    }
}

impl<M> IntoResponse for SaveError<M> {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            SaveError::Conflict { rejected, current } => conflict(
                rejected.pk(),
                rejected.version(),
                Some(current.version()),
                message,
            ),
            SaveError::NotFound { rejected } => not_found(rejected.pk(), message),
            SaveError::Backend { error, .. } => error.into_response(),
        }
    }
}

impl<M> IntoResponse for UpdateError<M> {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            UpdateError::NotFound { pk } => not_found(pk, message),
            UpdateError::RetriesExhausted { current, .. } => conflict(
                current.pk(),
                current.version(),
                Some(current.version()),
                message,
            ),
            UpdateError::Panicked { .. } => internal("update_panicked"),
            UpdateError::DuplicatePk { .. } => internal("duplicate_key"),
            UpdateError::Backend { error } => error.into_response(),
        }
    }
}

impl<M> IntoResponse for DeleteError<M> {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            DeleteError::NotFound { pk } => not_found(pk, message),
            DeleteError::Conflict { expected, current } => {
                conflict(current.pk(), expected, Some(current.version()), message)
            }
            DeleteError::Backend { error } => error.into_response(),
        }
    }
}

impl<M> IntoResponse for CommitError<M> {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            CommitError::Conflict {
                pk,
                expected,
                current,
                ..
            } => conflict(pk, expected, current.map(|c| c.version()), message),
            CommitError::DuplicatePk { .. } => internal("duplicate_key"),
            CommitError::Backend { error, .. } => error.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, ModelStore};

    #[derive(Clone, Debug)]
    struct Hit(u64);
    impl Model for Hit {
        const APP_LABEL: &'static str = "web";
        const NAME: &'static str = "Hit";
    }

    async fn json_of(response: Response) -> Value {
        use http_body_util::BodyExt;
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn conflicts_are_409_with_the_current_version() {
        let store: ModelStore<Hit> = ModelStore::new();
        let read = store.insert(Hit(0));
        store.update(read.pk(), |h| h.0 += 1).unwrap();
        let response = store.save(read.edit()).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            HeaderValue::from_static("application/json")
        );
        let body = json_of(response).await;
        assert_eq!(body["error"], "conflict");
        assert_eq!(body["pk"], read.pk());
        assert_eq!(body["expected_version"], 1);
        assert_eq!(body["current_version"], 2);

        let response = store.delete(read.pk(), 1).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(json_of(response).await["current_version"], 2);

        let other = store.insert(Hit(0));
        let (a, b) = (store.get(read.pk()).unwrap(), other.clone());
        store.update(other.pk(), |h| h.0 += 1).unwrap();
        let response = store
            .commit(vec![a.edit(), b.edit()])
            .unwrap_err()
            .into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = json_of(response).await;
        assert_eq!(
            (body["pk"].as_u64(), body["current_version"].as_u64()),
            (Some(other.pk()), Some(2))
        );

        let budgeted: ModelStore<Hit> = ModelStore::builder().retry_budget(1).build();
        let pk = budgeted.insert(Hit(0)).pk();
        let result = budgeted.update(pk, |h| {
            if h.0 == 0 {
                budgeted.update(pk, |h| h.0 = 10).unwrap();
            }
        });
        let response = result.unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(json_of(response).await["current_version"], 2);
    }

    #[tokio::test]
    async fn missing_records_are_404_and_storage_failures_hide_details() {
        let store: ModelStore<Hit> = ModelStore::new();
        let response = store.update(7, |_| ()).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_of(response).await["pk"], 7);
        let response = store.delete(7, 1).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let read = store.insert(Hit(0));
        store.delete(read.pk(), 1).unwrap();
        let response = store.save(read.edit()).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);

        let response = StoreError::Connection {
            message: "password=secret".into(),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!json_of(response).await.to_string().contains("secret"));
        let response = UpdateError::<Hit>::Backend {
            error: StoreError::Corrupt {
                table: "t".into(),
                pk: 1,
                message: "secret".into(),
            },
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!json_of(response).await.to_string().contains("secret"));
    }
}
