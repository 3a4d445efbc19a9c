//! `PgModelStore` against a real PostgreSQL (feature `postgres`).
//!
//! Reads `UNLOCKED_DATABASE_URL` (default `postgres://root@127.0.0.1:5432/test`). Without a
//! reachable server every test prints a notice and passes, unless `CI=true`, where it fails.
//! Each test works in a table of its own.
//!
//! Without feature `postgres` (a plain `cargo test`) it only prints how to run it.

#[cfg(feature = "postgres")]
#[path = "model_postgres/suite.rs"]
mod suite;

/// Runs in every build: the storage errors every remote store reports (no server needed).
#[test]
fn store_errors_name_what_failed() {
    use unlocked::model::StoreError;
    let e = StoreError::InDoubt {
        table: "bank_account".into(),
        pk: 7,
        message: "connection reset".into(),
    };
    assert!(e.is_connection());
    let text = e.to_string();
    assert!(
        text.contains("bank_account") && text.contains(" 7 "),
        "{text}"
    );
    let e = StoreError::Corrupt {
        table: "bank_account".into(),
        pk: 9,
        message: "missing field `owner`".into(),
    };
    assert!(!e.is_connection());
    assert!(
        e.to_string().contains("record 9 of table `bank_account`"),
        "{e}"
    );
    #[cfg(not(feature = "postgres"))]
    {
        use std::io::Write;
        // Straight to the stream: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "notice: the PostgreSQL model tests need `--features postgres` (run ci/postgres.sh)"
        );
    }
}
